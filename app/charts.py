"""Altair charts for the pages: pure functions from small polars frames to charts."""

from __future__ import annotations

from datetime import date

import altair as alt
import polars as pl

OBSERVED = "#2f6690"
RECOVERED = "#e07a5f"
FORECAST = "#3a7d44"
STOCKOUT = "#d62828"
_HEIGHT = 220


def _x_date(domain: tuple[date, date] | None, *, title: str | None = None) -> alt.X:
    scale = alt.Scale(domain=[d.isoformat() for d in domain]) if domain else alt.Undefined
    return alt.X("dt:T", title=title, scale=scale, axis=alt.Axis(format="%b %d"))


def observed_recovered(
    frame: pl.DataFrame, *, domain: tuple[date, date] | None = None, height: int = _HEIGHT
) -> alt.LayerChart:
    """Observed sales and recovered demand per day; the shaded gap is the lost demand.

    Reads dt, observed, recovered.
    """
    data = frame.select("dt", "observed", pl.col("recovered").fill_null(pl.col("observed")))
    x = _x_date(domain)
    gap = (
        alt.Chart(data)
        .mark_area(opacity=0.25, color=RECOVERED)
        .encode(x=x, y=alt.Y("observed:Q", title="units"), y2="recovered:Q")
    )
    long = data.unpivot(index="dt", on=["observed", "recovered"], variable_name="series")
    lines = (
        alt.Chart(long)
        .mark_line(strokeWidth=2)
        .encode(
            x=x,
            y="value:Q",
            color=alt.Color(
                "series:N",
                scale=alt.Scale(domain=["observed", "recovered"], range=[OBSERVED, RECOVERED]),
                legend=alt.Legend(orient="top", title=None),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=["observed", "recovered"], range=[[1, 0], [5, 3]]),
                legend=None,
            ),
            tooltip=[alt.Tooltip("dt:T"), "series:N", alt.Tooltip("value:Q", format=",.1f")],
        )
    )
    return (gap + lines).properties(height=height)


def lost_bars(frame: pl.DataFrame, key: str, *, title: str, top: int = 15) -> alt.Chart:
    """Horizontal bars of lost demand by ``key`` (top ``top``). Reads key, lost, lost_share."""
    data = (
        frame.sort("lost", descending=True)
        .head(top)
        .with_columns(pl.format(f"{title} {{}}", pl.col(key)).alias("label"))
    )
    return (
        alt.Chart(data)
        .mark_bar(color=RECOVERED, cornerRadiusEnd=3)
        .encode(
            x=alt.X("lost:Q", title="lost units"),
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                alt.Tooltip("label:N", title=title),
                alt.Tooltip("lost:Q", format=",.1f"),
                alt.Tooltip("lost_share:Q", format=".1%", title="share of demand"),
                alt.Tooltip("stockout_day_share:Q", format=".1%", title="stockout days"),
            ],
        )
        .properties(height=alt.Step(24))
    )


def hour_heatmap(grid: pl.DataFrame, *, domain: tuple[date, date] | None = None) -> alt.LayerChart:
    """Hour × day heatmap of sales; stockout hours carry a red cross. Reads dt, hour, sale, stockout."""
    base = alt.Chart(grid)
    x = alt.X(
        "yearmonthdate(dt):O",
        title=None,
        axis=alt.Axis(format="%b %d", labelAngle=-45, labelOverlap=True),
    )
    y = alt.Y("hour:O", title="hour", sort="descending")
    cells = base.mark_rect().encode(
        x=x,
        y=y,
        color=alt.Color("sale:Q", title="sales", scale=alt.Scale(scheme="blues")),
        tooltip=[
            alt.Tooltip("dt:T"),
            "hour:O",
            alt.Tooltip("sale:Q", format=".1f"),
            alt.Tooltip("stockout:Q", title="out of stock"),
        ],
    )
    marks = (
        base.transform_filter(alt.datum.stockout == 1)
        .mark_point(shape="cross", color=STOCKOUT, size=28, filled=True, opacity=0.85)
        .encode(x=x, y=y)
    )
    return (cells + marks).properties(height=360)


def forecast_band(
    forecast: pl.DataFrame,
    history: pl.DataFrame | None = None,
    *,
    domain: tuple[date, date] | None = None,
    height: int = _HEIGHT,
) -> alt.LayerChart | alt.FacetChart:
    """The forecast with its P10–P90 band, history before it and actuals on its days.

    Reads forecast dt, yhat, yhat_p10, yhat_p90 (and `actual` when present); history dt, observed.
    """
    x = _x_date(domain)
    band = (
        alt.Chart(forecast)
        .mark_area(opacity=0.25, color=FORECAST)
        .encode(
            x=x,
            y=alt.Y("yhat_p10:Q", title="units"),
            y2="yhat_p90:Q",
            tooltip=[
                alt.Tooltip("dt:T"),
                alt.Tooltip("yhat_p10:Q", format=",.1f", title="P10"),
                alt.Tooltip("yhat_p90:Q", format=",.1f", title="P90"),
            ],
        )
    )
    line = (
        alt.Chart(forecast)
        .mark_line(color=FORECAST, strokeWidth=2, point=True)
        .encode(
            x=x, y="yhat:Q", tooltip=[alt.Tooltip("dt:T"), alt.Tooltip("yhat:Q", format=",.1f")]
        )
    )
    layers: list[alt.Chart] = [band, line]
    if history is not None and not history.is_empty():
        layers.insert(
            0,
            alt.Chart(history)
            .mark_line(color=OBSERVED, strokeWidth=1.5)
            .encode(
                x=x,
                y="observed:Q",
                tooltip=[alt.Tooltip("dt:T"), alt.Tooltip("observed:Q", format=",.1f")],
            ),
        )
    if "actual" in forecast.columns and forecast["actual"].drop_nulls().len():
        layers.append(
            alt.Chart(forecast.drop_nulls("actual"))
            .mark_point(color="black", filled=True, size=45, shape="diamond")
            .encode(
                x=x,
                y="actual:Q",
                tooltip=[alt.Tooltip("dt:T"), alt.Tooltip("actual:Q", format=",.1f")],
            )
        )
    return alt.layer(*layers).properties(height=height)


def covariates(
    frame: pl.DataFrame, columns: list[str], *, domain: tuple[date, date] | None = None
) -> alt.VConcatChart:
    """One small panel per covariate, all on the same time axis. Reads dt and ``columns``."""
    panels = []
    scale = alt.Scale(domain=[d.isoformat() for d in domain]) if domain else alt.Undefined
    for i, col in enumerate(columns):
        last = i == len(columns) - 1
        x = alt.X(
            "dt:T",
            title=None,
            scale=scale,
            axis=alt.Axis(format="%b %d", labels=last, ticks=last, grid=True),
        )
        base = alt.Chart(
            frame,
            title=alt.TitleParams(
                col.replace("_", " "),
                anchor="start",
                fontSize=11,
                fontWeight="normal",
                color="#5c677d",
                offset=2,
            ),
        )
        if col.endswith("_flag"):
            mark = base.mark_bar(color="#8d99ae", opacity=0.8)
        else:
            mark = base.mark_line(
                color="#5c677d", interpolate="step-after" if col == "discount" else "monotone"
            )
        panels.append(
            mark.encode(
                x=x,
                y=alt.Y(
                    f"{col}:Q",
                    title=None,
                    axis=alt.Axis(tickCount=2),
                    scale=alt.Scale(zero=col.endswith("_flag")),
                ),
                tooltip=[alt.Tooltip("dt:T"), f"{col}:Q"],
            ).properties(height=34)
        )
    return alt.vconcat(*panels, spacing=4).resolve_scale(x="shared")


def share_line(frame: pl.DataFrame) -> alt.Chart:
    """The daily share of series with a stockout. Reads dt, stockout_day_share."""
    return (
        alt.Chart(frame)
        .mark_area(
            line={"color": STOCKOUT},
            color=alt.Gradient(
                gradient="linear",
                stops=[
                    alt.GradientStop(color="white", offset=0),
                    alt.GradientStop(color="#f4a5a5", offset=1),
                ],
                x1=1,
                x2=1,
                y1=1,
                y2=0,
            ),
        )
        .encode(
            x=_x_date(None),
            y=alt.Y(
                "stockout_day_share:Q",
                title="share of series",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[alt.Tooltip("dt:T"), alt.Tooltip("stockout_day_share:Q", format=".1%")],
        )
        .properties(height=_HEIGHT)
    )


def metric_bars(frame: pl.DataFrame, *, metric: str) -> alt.Chart:
    """A bar per model version for ``metric``; the champion highlighted. Reads version, aliases."""
    return (
        alt.Chart(frame.drop_nulls(metric))
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("version:O", title="version", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{metric}:Q", title=metric),
            color=alt.condition(
                "indexof(datum.aliases, 'champion') >= 0", alt.value(FORECAST), alt.value("#adb5bd")
            ),
            tooltip=["version:O", "aliases:N", alt.Tooltip(f"{metric}:Q", format=".4f")],
        )
        .properties(height=180)
    )


def live_accuracy(frame: pl.DataFrame) -> alt.LayerChart:
    """Live acc per version over business dates (lines), each beside the acc the gate
    measured for it (dashed). Reads business_date, version, acc, gate_acc."""
    base = alt.Chart(frame).encode(
        color=alt.Color("version:N", legend=alt.Legend(orient="top", title="version"))
    )
    live = base.mark_line(point=True).encode(
        x=alt.X("business_date:T", title="business date"),
        y=alt.Y("acc:Q", title="acc (published protocol)", scale=alt.Scale(zero=False)),
        tooltip=[
            alt.Tooltip("business_date:T", title="as of"),
            "version:N",
            alt.Tooltip("acc:Q", title="live acc", format=".4f"),
            alt.Tooltip("gate_acc:Q", title="gate acc", format=".4f"),
        ],
    )
    gate = base.mark_rule(strokeDash=[4, 3]).encode(y="mean(gate_acc):Q")
    return (live + gate).properties(height=220)


_STATUS_COLOURS = {
    "done": FORECAST,
    "failed": STOCKOUT,
    "skipped": "#adb5bd",
    "running": "#f4a261",
    "interrupted": "#9d4edd",
}


def step_durations(frame: pl.DataFrame) -> alt.Chart:
    """Seconds per step of one run, coloured by status. Reads step, seconds, status."""
    present = sorted(set(frame["status"].to_list()), key=lambda st: (st not in _STATUS_COLOURS, st))
    return (
        alt.Chart(frame)
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("seconds:Q", title="seconds"),
            y=alt.Y("step:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(
                    domain=present,
                    range=[_STATUS_COLOURS.get(status, "#6c757d") for status in present],
                ),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=["step:N", "status:N", alt.Tooltip("seconds:Q", format=",.1f")],
        )
        .properties(height=alt.Step(22))
    )
