"""Tiny hand-built frames in the hub schema, for tests that need exact control."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from pipelines.data.contract import HOURS, RAW_SCHEMA


def hub_frame(n_series: int = 3, n_days: int = 5, start: date = date(2024, 3, 28)) -> pl.DataFrame:
    """A valid raw frame: every invariant holds, sorted by store, product, day."""
    rows = []
    for s in range(n_series):
        for d in range(n_days):
            sale = [round(0.1 * ((h + s + d) % 4), 1) if 6 <= h < 22 else 0.0 for h in range(HOURS)]
            stock = [1 if (h >= 20 and (s + d) % 2 == 0) else 0 for h in range(HOURS)]
            rows.append(
                {
                    "city_id": s % 2,
                    "store_id": s,
                    "management_group_id": 1,
                    "first_category_id": 2,
                    "second_category_id": 3,
                    "third_category_id": 4,
                    "product_id": 10 + s,
                    "dt": (start + timedelta(days=d)).isoformat(),
                    "sale_amount": sum(sale),
                    "hours_sale": sale,
                    "stock_hour6_22_cnt": sum(stock[6:22]),
                    "hours_stock_status": stock,
                    "discount": 1.0 if d % 3 else 0.9,
                    "holiday_flag": int(d % 7 in (5, 6)),
                    "activity_flag": d % 2,
                    "precpt": 0.5,
                    "avg_temperature": 20.0,
                    "avg_humidity": 60.0,
                    "avg_wind_level": 2.0,
                }
            )
    return pl.DataFrame(rows, schema=RAW_SCHEMA)
