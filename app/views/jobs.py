"""Jobs: the schedule, the job history and the failure messages."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st

from app import charts, common

st.title("Jobs")
s = common.settings()


st.subheader("Schedule")
with common.guard("the schedule"):
    from pipelines.jobs import schedule

    now = datetime.now(UTC)
    rows = []
    for name, cron, what in (
        (
            "daily",
            s.daily_cron,
            "ingest → recover → train → evaluate → register → gate → forecast → aggregates",
        ),
        ("weekly-retrain", s.retrain_cron, "the daily job with a full retrain"),
    ):
        nxt = schedule.trigger(cron).get_next_fire_time(None, now)
        rows.append(
            {
                "job": name,
                "cron (UTC)": cron,
                "next run": nxt.strftime("%Y-%m-%d %H:%M") if nxt else "–",
                "what": what,
            }
        )
    st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        "`freshcast schedule` runs these; set FRESHCAST_DAILY_CRON / FRESHCAST_RETRAIN_CRON "
        "to change them."
    )

st.subheader("History")
with common.guard("the job history"):
    history = common.job_history(s)
    if history.is_empty():
        common.empty_state(
            "No job has run yet.",
            "`freshcast run` runs the daily job now; `freshcast schedule` runs it "
            "on its schedule. Each step's outcome is recorded here.",
        )
        st.stop()

    runs = (
        history.sort("id")
        .group_by("job", "business_date", maintain_order=True)
        .agg(
            pl.col("started").min(),
            pl.col("ended").max(),
            pl.col("seconds").sum(),
            pl.col("step").n_unique().alias("steps"),
            (pl.col("status") == "failed").sum().alias("failures"),
            pl.col("status").last().alias("last_status"),
        )
        .with_columns(
            pl.when(pl.col("last_status") == "running")
            .then(pl.lit("running"))
            .when(pl.col("failures") > 0)
            .then(pl.lit("done after retry"))
            .otherwise(pl.lit("done"))
            .alias("status")
        )
        .sort("started", descending=True)
    )
    # A run whose newest step attempt failed is failed, whatever came before.
    last_attempts = history.sort("id").group_by("job", "business_date", "step").last()
    open_failures = (
        last_attempts.filter(pl.col("status") == "failed")
        .select("job", "business_date")
        .unique()
        .with_columns(pl.lit(True).alias("open_failure"))
    )
    runs = (
        runs.join(open_failures, on=["job", "business_date"], how="left")
        .with_columns(
            pl.when(pl.col("open_failure"))
            .then(pl.lit("failed"))
            .otherwise(pl.col("status"))
            .alias("status")
        )
        .drop("open_failure", "last_status")
    )

    last = runs.row(0, named=True)
    c = st.columns(4)
    c[0].metric(f"Last run ({last['job']})", str(last["business_date"]))
    c[1].metric("Status", last["status"])
    c[2].metric("Duration", f"{common.fmt_num(last['seconds'])} s")
    c[3].metric("Failed steps (all runs)", f"{history.filter(pl.col('status') == 'failed').height}")

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Runs**")
        st.dataframe(
            runs,
            hide_index=True,
            width="stretch",
            column_config={"seconds": st.column_config.NumberColumn(format="%.1f")},
        )
    with right:
        st.markdown(f"**Steps of {last['job']} for {last['business_date']}**")
        latest = history.filter(
            pl.col("job") == last["job"], pl.col("business_date") == last["business_date"]
        ).sort("id")
        st.altair_chart(
            charts.step_durations(latest.with_columns(pl.col("seconds").fill_null(0))),
            width="stretch",
        )

    failures = history.filter(pl.col("status").is_in(["failed", "interrupted"]))
    st.subheader("Failures")
    if failures.is_empty():
        st.success("No failed steps in the recorded history.", icon=":material/check_circle:")
    for row in failures.head(20).iter_rows(named=True):
        with st.expander(
            f"{row['job']} · {row['business_date']} · {row['step']} · {row['started']}",
            icon=":material/error:",
        ):
            st.code(row["error"] or f"({row['status']}, no message)", language=None)

    st.subheader("All steps")
    st.dataframe(
        history.select(
            "job", "business_date", "step", "status", "started", "ended", "seconds", "error"
        ),
        hide_index=True,
        width="stretch",
        height=320,
        column_config={"seconds": st.column_config.NumberColumn(format="%.1f")},
    )
    st.download_button(
        "Download history as CSV",
        common.csv_bytes(history),
        "job-history.csv",
        "text/csv",
        key="jobs-csv",
    )
