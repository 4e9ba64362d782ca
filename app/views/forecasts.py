"""Forecasts: next week's forecast for a filtered set, an aggregate chart, downloads."""

from __future__ import annotations

from datetime import date
from typing import cast

import polars as pl
import streamlit as st

from app import charts, common
from pipelines import queries as app_data

st.title("Forecasts")
s = common.settings()

common.require_data(s)
agg = common.load_aggregates(s)
fc_path = s.layout.latest("forecasts")
if agg is None or fc_path is None:
    common.empty_state(
        "No forecast yet.",
        "Run `freshcast run` (or `make run`): the daily job forecasts the next 7 days "
        "with the champion model.",
    )
    st.stop()
series_index = agg["series_index"]
# Sending more rows to the browser only slows the page; the downloads hold every row.
SHOWN_ROWS = 5_000


@st.cache_data(show_spinner=False, max_entries=16)
def _table(
    stamp: float, cities: tuple[int, ...], categories: tuple[int, ...], stores: tuple[int, ...]
) -> pl.DataFrame:
    out = app_data.forecast_table(
        common.settings(), series_index, cities=list(cities), categories=list(categories)
    )
    if stores:
        out = out.filter(pl.col("store_id").is_in(stores))
    if out.is_empty():
        return out
    actual = _actuals(stamp, cast(date, out["dt"].min()), cast(date, out["dt"].max()))
    if actual.height:
        out = out.join(actual, on=["store_id", "product_id", "dt"], how="left")
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _actuals(stamp: float, first: date, last: date) -> pl.DataFrame:
    daily = app_data.scan_daily(common.settings())
    if daily is None:
        return pl.DataFrame()
    return (
        daily.filter(pl.col("dt").is_between(first, last))
        .select("store_id", "product_id", "dt", pl.col("sale_amount").alias("actual"))
        .collect()
    )


@st.cache_data(show_spinner=False, max_entries=4)
def _download(stamp: float, key: tuple[tuple[int, ...], ...], kind: str) -> bytes:
    """The filtered table as CSV or parquet bytes, built once per filter (not per rerun)."""
    table = _table(stamp, *key)
    return common.csv_bytes(table) if kind == "csv" else common.parquet_bytes(table)


st.caption(
    f"Forecast made on {fc_path.stem} by the champion model, for the next "
    f"{agg['summary']['forecast_days'][0]} days."
)
cities, categories = common.filters(agg["series_index"], key="forecasts")
store_options = sorted(
    common.apply_filters(agg["series_index"], cities, categories)["store_id"].unique().to_list()
)
stores = st.multiselect("Store", store_options, key="forecasts-store", placeholder="All stores")

with common.guard("the forecast"):
    stamp = app_data.file_stamp(fc_path)
    key = (tuple(cities), tuple(categories), tuple(stores))
    table = _table(stamp, *key)
    if table.is_empty():
        common.empty_state("No forecast rows match these filters.", "Clear a filter.")
        st.stop()
    daily = (
        table.group_by("dt")
        .agg(
            pl.col("yhat", "yhat_p10", "yhat_p50", "yhat_p90").sum(),
            # A day without any actual stays null (not 0) so the chart shows no point for it.
            *(
                [pl.when(pl.col("actual").count() > 0).then(pl.col("actual").sum()).alias("actual")]
                if "actual" in table.columns
                else []
            ),
        )
        .sort("dt")
    )
    history = (
        agg["daily_totals"].tail(28).select("dt", "observed")
        if not (cities or categories or stores)
        else None
    )

    c = st.columns(4)
    c[0].metric(
        "Series", f"{table.select(pl.struct('store_id', 'product_id').n_unique()).item():,}"
    )
    c[1].metric("Forecast, 7 days", common.fmt_num(daily["yhat"].sum()))
    c[2].metric(
        "P10–P90 (sum of series)",
        f"{common.fmt_num(daily['yhat_p10'].sum(), 0)} – {common.fmt_num(daily['yhat_p90'].sum(), 0)}",
    )
    if "actual" in daily.columns and daily["actual"].drop_nulls().len():
        c[3].metric(
            "Actual so far",
            common.fmt_num(daily["actual"].sum()),
            help="observed sales on the forecast days (eval split), where they exist",
        )
    else:
        c[3].metric("Actual so far", "–", help="no observed sales on the forecast days yet")

    st.subheader("Total forecast per day")
    st.altair_chart(charts.forecast_band(daily, history), width="stretch")
    st.caption(
        "Band: sum of the series' P10 and P90 (wider than the total's own interval). "
        "Blue: observed sales before the forecast (all series); diamonds: actual sales."
    )

    st.subheader("Forecast table")
    if table.height > SHOWN_ROWS:
        st.caption(
            f"Showing the first {SHOWN_ROWS:,} of {table.height:,} rows; the downloads hold all."
        )
    st.dataframe(
        table.head(SHOWN_ROWS),
        hide_index=True,
        width="stretch",
        height=360,
        column_config={
            "dt": st.column_config.DateColumn("day", format="YYYY-MM-DD"),
            **{
                c: st.column_config.NumberColumn(c, format="%.2f")
                for c in ("yhat", "yhat_p10", "yhat_p50", "yhat_p90", "actual")
            },
        },
    )
    left, right, _ = st.columns([1, 1, 3])
    left.download_button(
        "Download CSV",
        _download(stamp, key, "csv"),
        f"forecast-{fc_path.stem}.csv",
        "text/csv",
        key="forecasts-csv",
    )
    right.download_button(
        "Download parquet",
        _download(stamp, key, "parquet"),
        f"forecast-{fc_path.stem}.parquet",
        "application/octet-stream",
        key="forecasts-parquet",
    )
