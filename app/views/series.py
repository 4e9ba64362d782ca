"""Series explorer: one store × product, its stockout hours, recovered demand and forecast."""

from __future__ import annotations

from datetime import date, timedelta
from typing import cast

import polars as pl
import streamlit as st

from app import charts, common
from pipelines import queries as app_data

HEATMAP_DAYS = 42
HISTORY_DAYS = 28

st.title("Series explorer")
s = common.settings()

agg = common.require_aggregates(
    s,
    "The data is there, but the daily job has not built its aggregates yet.",
    "Run `freshcast run` (or `make run`) to recover demand and build the series index.",
)


@st.cache_data(show_spinner=False, max_entries=64)
def _detail(home: str, data_dir: str, stamp: str, series_id: int) -> app_data.SeriesDetail:
    return app_data.series_detail(common.settings(), series_id)


index = agg["series_index"]
censored = agg["most_censored"]
stats = agg["series_stats"].filter(pl.col("window") == 28)

mode = (
    st.segmented_control(
        "Pick a series",
        ["Most censored", "Store and product"],
        default="Most censored",
        key="series-mode",
    )
    or "Most censored"
)
if mode == "Most censored" and censored.height:
    labels = {
        r["series_id"]: f"store {r['store_id']} · product {r['product_id']} — "
        f"{r['stockout_hours']} stockout h, {r['lost']:.1f} lost (28 days)"
        for r in censored.iter_rows(named=True)
    }
    series_id = st.selectbox(
        "Most-censored series (last 28 days)",
        list(labels),
        format_func=labels.__getitem__,
        key="series-censored",
    )
else:
    left, right = st.columns(2)
    stores = sorted(index["store_id"].unique().to_list())
    store = left.selectbox("Store", stores, key="series-store")
    products = sorted(index.filter(pl.col("store_id") == store)["product_id"].to_list())
    product = right.selectbox("Product", products, key="series-product")
    series_id = index.filter(pl.col("store_id") == store, pl.col("product_id") == product)[
        "series_id"
    ][0]

stamp = (
    f"{app_data.file_stamp(s.layout.latest('recovered'))}:"
    f"{app_data.file_stamp(s.layout.latest('forecasts'))}"
)
with common.guard("this series"):
    detail = _detail(str(s.home), str(s.data_dir), stamp, int(series_id))
    if detail.daily.is_empty():
        common.empty_state(
            f"Series {series_id} has no rows in the dataset.", "Pick another series."
        )
        st.stop()
    first = detail.daily.row(0, named=True)
    st.caption(
        f"Store {first['store_id']} in city {first['city_id']} · product "
        f"{first['product_id']} in category {first['first_category_id']} / "
        f"{first['second_category_id']} / {first['third_category_id']}"
    )
    row = stats.filter(pl.col("series_id") == series_id)
    if row.height:
        r = row.row(0, named=True)
        c = st.columns(4)
        c[0].metric("Stockout hours, 28 days", f"{r['stockout_hours']:,}")
        c[1].metric("Stockout days, 28 days", common.fmt_pct(r["stockout_day_share"], 0))
        c[2].metric("Lost sales, 28 days", common.fmt_num(r["lost"]))
        c[3].metric("Lost share of demand", common.fmt_pct(r["lost_share"]))

    business: date = agg["summary"]["business_date"][0]
    daily_view = app_data.observed_vs_recovered(detail)
    fc = app_data.forecast_vs_actual(detail)
    last_day = cast(date, fc["dt"].max() if fc.height else detail.daily["dt"].max())
    domain = (business - timedelta(days=HISTORY_DAYS - 1), last_day)
    recent = daily_view.filter(pl.col("dt") >= domain[0], pl.col("dt") <= business)

    st.subheader("Sales by hour, stockout hours marked")
    st.caption(
        f"Last {HEATMAP_DAYS} days up to the business date; a red cross is an hour "
        "flagged out of stock, where observed sales understate demand."
    )
    grid = app_data.hour_grid(detail.daily.filter(pl.col("dt") <= business), last_days=HEATMAP_DAYS)
    st.altair_chart(charts.hour_heatmap(grid), width="stretch")

    left, right = st.columns(2)
    with left:
        st.markdown("**Observed sales vs recovered demand**")
        if detail.recovered.is_empty():
            st.caption("No recovered demand for this series yet.")
        st.altair_chart(charts.observed_recovered(recent, domain=domain), width="stretch")
    with right:
        st.markdown("**7-day forecast with its P10–P90 band**")
        if fc.is_empty():
            common.empty_state(
                "No forecast for this series yet.", "`freshcast run` writes next week's forecast."
            )
        else:
            st.altair_chart(charts.forecast_band(fc, recent, domain=domain), width="stretch")
            st.caption("Line: forecast; band: P10–P90; diamonds: actual sales, where known.")

    st.markdown("**Covariates, on the same days**")
    cov = detail.daily.filter(pl.col("dt") >= domain[0], pl.col("dt") <= domain[1])
    st.altair_chart(
        charts.covariates(cov, list(app_data.COVARIATES), domain=domain), width="stretch"
    )

    with st.expander("Daily rows"):
        table = (
            daily_view.join(
                fc.select("dt", "yhat", "yhat_p10", "yhat_p90", "actual"),
                on="dt",
                how="full",
                coalesce=True,
            )
            if fc.height
            else daily_view
        )
        st.dataframe(table.sort("dt", descending=True), hide_index=True, width="stretch")
        st.download_button(
            "Download CSV",
            common.csv_bytes(table),
            f"series-{series_id}.csv",
            "text/csv",
            key="series-csv",
        )
