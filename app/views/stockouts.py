"""Stockouts and lost demand: rank stores, categories and products by unserved demand."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import charts, common

st.title("Stockouts & lost demand")
s = common.settings()

agg = common.require_aggregates(
    s,
    "The data is there, but the daily job has not recovered demand yet.",
    "Run `freshcast run` (or `make run`): it recovers the demand hidden by stockouts.",
)

st.caption(
    "Lost demand = recovered demand − observed sales, up to the business date "
    f"{agg['summary']['business_date'][0]}."
)
window = (
    st.segmented_control(
        "Window",
        [7, 28],
        default=28,
        format_func=lambda d: f"last {d} days",
        key="stockouts-window",
    )
    or 28
)
stats = agg["series_stats"].filter(pl.col("window") == window)
cities, categories = common.filters(agg["series_index"], key="stockouts")
stats = common.apply_filters(stats, cities, categories)

_SUMS = [
    "observed",
    "recovered",
    "lost",
    "stockout_days",
    "stockout_hours",
    "imputed_hours",
    "days",
]


def rank(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Sum per ``keys`` and sort by lost demand (the aggregates are per series already)."""
    return (
        frame.group_by(keys)
        .agg(*(pl.col(c).sum() for c in _SUMS), pl.len().alias("series"))
        .with_columns(
            (pl.col("stockout_days") / pl.col("days")).alias("stockout_day_share"),
            pl.when(pl.col("recovered") > 0)
            .then(pl.col("lost") / pl.col("recovered"))
            .otherwise(0.0)
            .alias("lost_share"),
        )
        .sort(["lost", *keys], descending=[True, *([False] * len(keys))])
    )


with common.guard("the rankings"):
    if stats.is_empty():
        common.empty_state("No series match these filters.", "Clear a city or category filter.")
        st.stop()
    total = stats.select(pl.col("lost", "recovered", "stockout_days", "days").sum()).row(
        0, named=True
    )
    c = st.columns(4)
    c[0].metric("Lost sales", common.fmt_num(total["lost"]))
    c[1].metric(
        "Share of demand lost",
        common.fmt_pct(total["lost"] / total["recovered"] if total["recovered"] else 0),
    )
    c[2].metric("Stockout days", common.fmt_pct(total["stockout_days"] / total["days"]))
    c[3].metric(
        "Series with stockouts",
        f"{stats.filter(pl.col('stockout_hours') > 0).height:,} / {stats.height:,}",
    )

    views = {
        "Stores": (["store_id", "city_id"], "store_id", "store"),
        "Categories": (["first_category_id"], "first_category_id", "category"),
        "Products": (["product_id", "first_category_id"], "product_id", "product"),
        "Series": (
            ["series_id", "store_id", "product_id", "city_id", "first_category_id"],
            "series_id",
            "series",
        ),
    }
    tabs = st.tabs(list(views))
    for tab, (name, (keys, label_key, label)) in zip(tabs, views.items(), strict=True):
        with tab:
            ranked = rank(stats, keys) if name != "Series" else stats.sort("lost", descending=True)
            chart_data = (
                ranked
                if name != "Series"
                else ranked.with_columns(
                    pl.format("{}·{}", "store_id", "product_id").alias("series_id")
                )
            )
            st.altair_chart(charts.lost_bars(chart_data, label_key, title=label), width="stretch")
            table = ranked.select(
                *keys,
                "lost",
                "lost_share",
                "recovered",
                "observed",
                "stockout_day_share",
                "stockout_hours",
                "imputed_hours",
            )
            st.dataframe(
                table,
                hide_index=True,
                width="stretch",
                column_config={
                    "lost": st.column_config.NumberColumn("lost", format="%.1f"),
                    "recovered": st.column_config.NumberColumn("recovered", format="%.1f"),
                    "observed": st.column_config.NumberColumn("observed", format="%.1f"),
                    "lost_share": st.column_config.ProgressColumn(
                        "lost share", min_value=0.0, max_value=1.0, format="percent"
                    ),
                    "stockout_day_share": st.column_config.ProgressColumn(
                        "stockout days", min_value=0.0, max_value=1.0, format="percent"
                    ),
                },
            )
            st.download_button(
                f"Download {name.lower()} as CSV",
                common.csv_bytes(table),
                f"lost-demand-{name.lower()}-{window}d.csv",
                "text/csv",
                key=f"stockouts-csv-{name}",
            )
