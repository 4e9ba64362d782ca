"""Overview: freshness and size, the champion, the last job run, stockouts and lost sales."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import charts, common
from pipelines import queries as app_data

st.title("Overview")
s = common.settings()

common.require_data(s)

agg = common.load_aggregates(s)
with common.guard("the data summary"):
    if agg is None:
        common.empty_state(
            "The data is there, but the daily job has not built its aggregates yet.",
            "Run `freshcast run` (or `make run`): its last step writes what this page shows.",
        )
    else:
        summary = agg["summary"].row(0, named=True)
        st.caption(
            f"Business date **{summary['business_date']}** · data from {summary['first_day']} "
            f"to {summary['last_day']} · aggregates built {summary['built_at']}"
        )
        c = st.columns(4)
        c[0].metric(
            "Series",
            f"{summary['series']:,}",
            help=f"{summary['stores']:,} stores × {summary['products']:,} products "
            f"in {summary['cities']:,} cities",
        )
        c[1].metric("Days of data", f"{summary['days']:,}", help=f"{summary['rows']:,} rows")
        c[2].metric(
            "Data size",
            common.fmt_bytes(app_data.dataset_bytes(s)),
            help="train and eval parquet files",
        )
        c[3].metric(
            "Forecast horizon",
            f"{summary['forecast_days']} days",
            help="days ahead in the latest forecast file",
        )

        st.subheader("Stockouts and lost sales")
        c = st.columns(4)
        c[0].metric(
            "Stockout days, last 7",
            common.fmt_pct(summary["stockout_day_share_7"]),
            delta=f"{100 * (summary['stockout_day_share_7'] - summary['stockout_day_share_28']):+.1f} pts vs 28 days",
            delta_color="inverse",
            help="share of series-days with at least one stockout hour in 6..21",
        )
        c[1].metric("Stockout days, last 28", common.fmt_pct(summary["stockout_day_share_28"]))
        c[2].metric(
            "Lost sales, last 7 days",
            common.fmt_num(summary["lost_7"]),
            help="recovered demand minus observed sales",
            delta=f"{common.fmt_pct(summary['lost_share_7'])} of demand",
            delta_color="off",
        )
        c[3].metric(
            "Lost sales, last 28 days",
            common.fmt_num(summary["lost_28"]),
            delta=f"{common.fmt_pct(summary['lost_share_28'])} of demand",
            delta_color="off",
        )

        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Observed sales vs recovered demand, all series**")
            st.altair_chart(charts.observed_recovered(agg["daily_totals"]), width="stretch")
        with right:
            st.markdown("**Share of series with a stockout, per day**")
            st.altair_chart(charts.share_line(agg["daily_totals"]), width="stretch")

        window = (
            st.segmented_control(
                "Window",
                [7, 28],
                default=7,
                format_func=lambda d: f"last {d} days",
                key="overview-window",
            )
            or 7
        )
        left, right = st.columns(2)
        by_city = agg["lost_by_city"].filter(pl.col("window") == window)
        by_cat = agg["lost_by_category"].filter(pl.col("window") == window)
        with left:
            st.markdown(f"**Lost sales by city, last {window} days**")
            st.altair_chart(charts.lost_bars(by_city, "city_id", title="city"), width="stretch")
        with right:
            st.markdown(f"**Lost sales by category, last {window} days**")
            st.altair_chart(
                charts.lost_bars(by_cat, "first_category_id", title="category"), width="stretch"
            )

left, right = st.columns(2)
with left, common.guard("the champion model"):
    st.subheader("Champion model")
    versions = common.model_versions(s)
    best = common.champion(versions)
    if best is None:
        common.empty_state(
            "No model is registered yet.",
            "`freshcast run` trains one, registers it and makes it champion.",
        )
    else:
        m = st.columns(3)
        m[0].metric("Version", f"v{best['version']}", help=best.get("kind") or None)
        m[1].metric(
            "acc",
            common.fmt_num(best["acc"], 4),
            help="1 − Σ|ŷ−y| / Σ|y| on in-stock eval days (published protocol)",
        )
        m[2].metric("wpe", common.fmt_num(best["wpe"], 4), help="Σ(ŷ−y) / Σ|y|: bias")
        st.caption(
            f"Trained on data through {best['business_date'] or '–'} · "
            f"registered {best['created'][:16].replace('T', ' ')}"
        )

with right, common.guard("the job history"):
    st.subheader("Last job run")
    runs = common.job_history(s)
    if runs.is_empty():
        common.empty_state(
            "No job has run yet.",
            "`freshcast run` runs the daily job; `freshcast schedule` keeps it running.",
        )
    else:
        last = runs.row(0, named=True)
        latest = runs.filter(
            pl.col("job") == last["job"], pl.col("business_date") == last["business_date"]
        )
        # The newest attempt of each step decides its status.
        steps = latest.sort("id").group_by("step", maintain_order=True).last()
        failed = steps.filter(pl.col("status") == "failed").height
        status = (
            "failed" if failed else ("running" if (steps["status"] == "running").any() else "done")
        )
        icon = {
            "done": ":material/check_circle:",
            "failed": ":material/error:",
            "running": ":material/pending:",
        }[status]
        st.markdown(
            f"{icon} **{last['job']}** for **{last['business_date']}**: {status} "
            f"({steps.height} steps, {common.fmt_num(steps['seconds'].sum(), 1)} s)"
        )
        cols = ["step", "status", "started", "seconds"]
        if steps["error"].drop_nulls().len():
            cols.append("error")
        st.dataframe(
            steps.select(cols).with_columns(pl.col("started").str.slice(11, 8)),
            hide_index=True,
            width="stretch",
            height=38 + 35 * steps.height,
            column_config={"seconds": st.column_config.NumberColumn(format="%.1f")},
        )
