"""Models: registered versions, live accuracy, a run comparison, continual refresh, overrides."""

from __future__ import annotations

import hmac

import altair as alt
import polars as pl
import streamlit as st

from app import charts, common
from pipelines import queries as app_data

st.title("Models")
s = common.settings()


@st.cache_data(show_spinner=False, max_entries=32)
def _run_info(tracking_uri: str, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    return app_data.run_metrics(common.settings(), run_id), app_data.run_params(
        common.settings(), run_id
    )


def _live_section(versions: pl.DataFrame) -> None:
    """Each version's live acc over time (its served forecasts, scored as days arrive),
    beside the acc the gate measured for it."""
    st.subheader("Live accuracy")
    live = app_data.live_history(s)
    if live is None or live.is_empty():
        common.empty_state(
            "No served forecast has been scored yet.",
            "Each daily job scores the forecasts it served against the days that arrive "
            "since; the second `freshcast run --date D` is the first to have any.",
        )
        return
    gate = versions.select(pl.col("version").cast(pl.String), pl.col("acc").alias("gate_acc"))
    live = live.join(gate, on="version", how="left")
    st.altair_chart(charts.live_accuracy(live), width="stretch")
    latest = live.group_by("version").agg(pl.all().sort_by("business_date").last())
    st.dataframe(
        latest.select("version", "business_date", "acc", "gate_acc", "wpe", "coverage", "rows")
        .rename({"acc": "live acc (7 days)", "business_date": "as of", "gate_acc": "gate acc"})
        .sort("version"),
        hide_index=True,
        width="stretch",
        column_config={
            "as of": st.column_config.DateColumn(format="YYYY-MM-DD"),
            **{
                c: st.column_config.NumberColumn(format="%.4f")
                for c in ("live acc (7 days)", "gate acc", "wpe", "coverage")
            },
        },
    )


versions = pl.DataFrame()
with common.guard("the registry"):
    versions = common.model_versions(s)
    if versions.is_empty():
        common.empty_state(
            "No model is registered yet.",
            "`freshcast run` trains a model, registers it in MLflow "
            "(`mlruns/`) and makes it champion.",
        )
    else:
        best = common.champion(versions)
        c = st.columns(4)
        c[0].metric("Champion", f"v{best['version']}" if best else "none")
        c[1].metric("acc", common.fmt_num(best["acc"] if best else None, 4))
        c[2].metric("wpe", common.fmt_num(best["wpe"] if best else None, 4))
        c[3].metric("Registered versions", f"{versions.height}")

        st.subheader("Registered versions")
        left, right = st.columns([3, 2])
        left.dataframe(
            versions.select(
                "version",
                "aliases",
                "kind",
                "business_date",
                "acc",
                "wpe",
                "live_acc",
                "live_alert",
                "created",
                "run_id",
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "business_date": "trained through",
                "acc": st.column_config.NumberColumn(format="%.4f"),
                "wpe": st.column_config.NumberColumn(format="%.4f"),
                "live_acc": st.column_config.NumberColumn("live acc", format="%.4f"),
                "live_alert": "live alert",
            },
        )
        with right:
            st.altair_chart(charts.metric_bars(versions, metric="acc"), width="stretch")

        if best and best.get("gate_warning"):
            st.warning(f"**Gate warning.** {best['gate_warning']}", icon=":material/warning:")
        if best and best.get("live_alert"):
            st.warning(f"**Live accuracy alert.** {best['live_alert']}", icon=":material/warning:")
        _live_section(versions)

        st.subheader("Compare two runs")
        labels = {
            r["version"]: f"v{r['version']} {('(' + r['aliases'] + ')') if r['aliases'] else ''}"
            for r in versions.iter_rows(named=True)
        }
        options = list(labels)
        left, right = st.columns(2)
        a = left.selectbox(
            "Run A", options, index=0, format_func=labels.__getitem__, key="models-a"
        )
        b = right.selectbox(
            "Run B",
            options,
            index=min(1, len(options) - 1),
            format_func=labels.__getitem__,
            key="models-b",
        )
        run_of = dict(zip(versions["version"], versions["run_id"], strict=True))
        (ma, pa), (mb, pb) = (
            _run_info(s.tracking_uri, run_of[a]),
            _run_info(s.tracking_uri, run_of[b]),
        )
        metrics = (
            pl.DataFrame(
                [
                    {"metric": k, f"v{a}": ma.get(k), f"v{b}": mb.get(k)}
                    for k in sorted(set(ma) | set(mb))
                ],
                schema={"metric": pl.String, f"v{a}": pl.Float64, f"v{b}": pl.Float64},
            )
            if a != b
            else pl.DataFrame({"metric": sorted(ma), f"v{a}": [ma[k] for k in sorted(ma)]})
        )
        if a != b:
            metrics = metrics.with_columns((pl.col(f"v{b}") - pl.col(f"v{a}")).alias("B − A"))
        params = pl.DataFrame(
            [
                {"param": k, f"v{a}": pa.get(k), f"v{b}": pb.get(k)}
                for k in sorted(set(pa) | set(pb))
            ],
            schema={"param": pl.String, f"v{a}": pl.String, f"v{b}": pl.String},
        ).unique("param", keep="first", maintain_order=True)
        left, right = st.columns(2)
        left.markdown("**Metrics**")
        left.dataframe(metrics, hide_index=True, width="stretch")
        right.markdown("**Parameters and training data**")
        if params.is_empty():
            right.caption("No parameters were logged on these runs.")
        else:
            right.dataframe(params, hide_index=True, width="stretch")

st.subheader("Continual refresh")
with common.guard("the continual-refresh history"):
    refresh = app_data.continual_history(s)
    if refresh is None or refresh.is_empty():
        common.empty_state(
            "No continual-refresh history yet.",
            "`freshcast refresh --data DIR --through DATE` updates the champion by replay; "
            "its history (accuracy per refresh against a full retrain, and compute saved) "
            "appears here.",
        )
    else:
        time_col = next(
            (
                c
                for c in refresh.columns
                if refresh[c].dtype in (pl.Date, pl.Datetime)
                or c in ("through", "business_date", "dt", "date")
            ),
            refresh.columns[0],
        )
        acc_cols = [c for c in refresh.columns if "acc" in c and refresh[c].dtype.is_numeric()]
        secs = [c for c in refresh.columns if "seconds" in c and refresh[c].dtype.is_numeric()]
        if acc_cols:
            # Days as text: a Date on an ordinal axis renders as epoch milliseconds.
            long = refresh.select(pl.col(time_col).cast(pl.String), *acc_cols).unpivot(
                index=time_col, variable_name="run"
            )
            st.altair_chart(
                alt.Chart(long)
                .mark_line(point=True)
                .encode(
                    x=alt.X(f"{time_col}:O", title=time_col, axis=alt.Axis(labelAngle=0)),
                    y=alt.Y("value:Q", title="acc", scale=alt.Scale(zero=False)),
                    color=alt.Color("run:N", legend=alt.Legend(orient="top", title=None)),
                    tooltip=[time_col, "run:N", alt.Tooltip("value:Q", format=".4f")],
                )
                .properties(height=220),
                width="stretch",
            )
        if len(secs) >= 2:
            spent, reference = float(refresh[secs[0]].sum()), float(refresh[secs[1]].sum())
            st.metric(
                "Compute saved",
                common.fmt_pct(1 - spent / reference if reference else None),
                help=f"Σ {secs[0]} vs Σ {secs[1]}",
            )
        st.dataframe(refresh, hide_index=True, width="stretch")

st.subheader("Promote or roll back")
with common.guard("the promotion controls"):
    from pipelines.jobs.overrides import promote_version, rollback_champion

    if versions.is_empty():
        st.caption("Nothing to promote yet.")
    else:
        st.caption("Overrides bypass the promotion gate; each is logged to MLflow with its reason.")
        with st.form("models-override"):
            action = st.radio(
                "Action",
                ["Promote a version to champion", "Roll back to the previous champion"],
                key="models-action",
            )
            version = st.selectbox(
                "Version to promote", versions["version"].to_list(), key="models-version"
            )
            reason = st.text_input(
                "Reason (logged)",
                key="models-reason",
                placeholder="e.g. v7 over-forecasts after the promo week",
            )
            sure = st.checkbox(
                "I understand this changes which model serves forecasts", key="models-confirm"
            )
            token = (
                st.text_input("Admin token", type="password", key="models-token")
                if s.admin_token
                else None
            )
            submitted = st.form_submit_button("Apply", type="primary")
        if submitted:
            if s.admin_token and not hmac.compare_digest(token or "", s.admin_token):
                st.warning("The admin token is wrong: nothing was changed.")
            elif not sure:
                st.warning("Tick the confirmation box first.")
            elif not reason.strip():
                st.warning("Give a reason: it is logged with the override.")
            else:
                if action.startswith("Promote"):
                    promote_version(s, int(version), reason.strip())
                    st.success(f"v{version} is now champion.")
                else:
                    rollback_champion(s, reason.strip())
                    st.success("Rolled back to the previous champion.")
                st.cache_data.clear()

    overrides = app_data.override_log(s)
    if not overrides.is_empty():
        st.markdown("**Override log** (by hand, and rollbacks on live evidence)")
        st.dataframe(overrides, hide_index=True, width="stretch")
