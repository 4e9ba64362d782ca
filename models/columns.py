"""Column names the learners share with the data layer.

``models`` must not import ``pipelines``, so the names live here and
:mod:`pipelines.schema` re-exports them as part of the data contract.
"""

from __future__ import annotations

# Location and product hierarchy: city > store; group > categories > product.
HIERARCHY_COLUMNS: tuple[str, ...] = (
    "city_id",
    "store_id",
    "management_group_id",
    "first_category_id",
    "second_category_id",
    "third_category_id",
    "product_id",
)
FLAG_COLUMNS: tuple[str, ...] = ("holiday_flag", "activity_flag")
WEATHER_COLUMNS: tuple[str, ...] = ("precpt", "avg_temperature", "avg_humidity", "avg_wind_level")
# Known-future covariates: published for the forecast days in eval.parquet.
COVARIATE_COLUMNS: tuple[str, ...] = ("discount", *FLAG_COLUMNS, *WEATHER_COLUMNS)
