"""A bounded, seeded replay buffer of training *windows* for continual refresh.

A window is one training example keyed by ``(series_id, dt)`` where ``dt`` is the **last
target day** it uses. For the direct LightGBM model it stands for the 7 stacked rows whose
target day is ``dt`` (horizons 1..7); for the neural model it is the 7-day target block
ending at ``dt``. Keying by the last target day makes the no-leakage rule one comparison:
a refresh through day t may only hold windows with ``dt <= t``.

The buffer stores keys, a stratum and a priority, never features: features are rebuilt
from history, so the buffer stays tiny (a few MB for 10^5 windows) and cannot go stale
when the feature code changes.

Sampling: each window gets a uniform priority drawn once, from ``(seed, dt)``, when it is
offered; a stratum keeps its ``capacity_s`` lowest priorities. Over a stream this is a
uniform reservoir sample per stratum (random-key reservoir sampling), vectorised, and
reproducible from the seed alone. Strata are ``group x weekday type`` by default, with
capacities proportional to how many windows each stratum has seen; ``mode="reservoir"`` uses
one stratum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl

from models.forecasters.panel import last_day

WINDOW_COLUMNS: tuple[str, ...] = ("series_id", "dt", "stratum", "priority")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class BufferConfig:
    """Replay buffer options.

    Attributes:
        capacity: the most windows the buffer ever holds.
        mode: ``"stratified"`` (series group x weekday type) or ``"reservoir"`` (one stratum).
        group_column: the panel column that names a series' group.
        seed: drives every priority and every replay draw.
    """

    capacity: int = 50_000
    mode: Literal["stratified", "reservoir"] = "stratified"
    group_column: str = "management_group_id"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        if self.mode not in ("stratified", "reservoir"):
            raise ValueError(f"unknown buffer mode {self.mode!r}")


def window_keys(panel: pl.DataFrame, *, days: pl.Expr, group_column: str) -> pl.DataFrame:
    """The windows whose last target day satisfies ``days``: one per series-day with a target.

    Reads ``series_id``, ``dt``, ``y`` and ``group_column``; returns ``series_id``, ``dt``,
    ``group`` (Int64) and ``weekend`` (bool), sorted by ``dt``, ``series_id``.
    """
    return (
        panel.filter(days & pl.col("y").is_not_null())
        .select(
            "series_id",
            "dt",
            pl.col(group_column).cast(pl.Int64).alias("group"),
            (pl.col("dt").dt.weekday() >= 6).alias("weekend"),
        )
        .sort("dt", "series_id")
    )


class ReplayBuffer:
    """Stratified (or plain) reservoir of window keys. Fitted state: ``windows_``, ``seen_``.

    Attributes:
        windows_: ``series_id``, ``dt``, ``stratum``, ``priority``; at most ``capacity`` rows.
        seen_: windows offered so far, per stratum (drives the capacity shares).
        last_dt_: the newest window day offered (None before the first :meth:`add`).
    """

    def __init__(self, config: BufferConfig | None = None) -> None:
        self.config = config or BufferConfig()
        self.windows_ = pl.DataFrame(
            schema={
                "series_id": pl.Int64,
                "dt": pl.Date,
                "stratum": pl.String,
                "priority": pl.Float64,
            }
        )
        self.seen_: dict[str, int] = {}
        self.last_dt_: date | None = None

    def __len__(self) -> int:
        return self.windows_.height

    # -- building ---------------------------------------------------------------------------
    def _strata(self, keys: pl.DataFrame) -> pl.Expr:
        if self.config.mode == "reservoir":
            return pl.lit("all")
        return pl.format(
            "g{}-{}",
            pl.col("group"),
            pl.when(pl.col("weekend")).then(pl.lit("we")).otherwise(pl.lit("wd")),
        )

    def _priorities(self, keys: pl.DataFrame) -> np.ndarray:
        # One generator per day, from (seed, day): a window's priority depends only on the
        # seed, its day and its rank among that day's sorted series, not on batch layout.
        out = np.empty(keys.height)
        days = keys["dt"].to_numpy()
        for day in np.unique(days):
            idx = np.flatnonzero(days == day)
            ordinal = int(day.astype("datetime64[D]").astype(np.int64))
            out[idx] = np.random.default_rng([self.config.seed, ordinal, 0]).random(len(idx))
        return out

    def add(self, keys: pl.DataFrame) -> ReplayBuffer:
        """Offer new windows (``series_id``, ``dt``, ``group``, ``weekend``); keep the bound.

        Windows already held are not offered twice (a re-run of the same day is a no-op).
        """
        if keys.height == 0:
            return self
        keys = keys.sort("dt", "series_id")
        new = keys.with_columns(
            self._strata(keys).alias("stratum"), pl.Series("priority", self._priorities(keys))
        )
        new = new.select(WINDOW_COLUMNS).join(
            self.windows_.select("series_id", "dt"), on=["series_id", "dt"], how="anti"
        )
        for stratum, n in new.group_by("stratum").len().iter_rows():
            self.seen_[stratum] = self.seen_.get(stratum, 0) + int(n)
        caps = self._capacities()
        pool = pl.concat([self.windows_, new]).with_columns(
            pl.col("priority").rank("ordinal").over("stratum").alias("_rank"),
            pl.col("stratum").replace_strict(caps, default=0, return_dtype=pl.Int64).alias("_cap"),
        )
        self.windows_ = (
            pool.filter(pl.col("_rank") <= pl.col("_cap"))
            .drop("_rank", "_cap")
            .sort("dt", "series_id")
        )
        top = last_day(keys)
        self.last_dt_ = top if self.last_dt_ is None or top > self.last_dt_ else self.last_dt_
        return self

    def _capacities(self) -> dict[str, int]:
        """Capacity per stratum, proportional to windows seen; sums to at most ``capacity``."""
        total = sum(self.seen_.values())
        names = sorted(self.seen_)
        exact = np.array([self.config.capacity * self.seen_[s] / total for s in names])
        caps = np.floor(exact).astype(int)
        # Largest remainders get the leftover slots (deterministic: ties by name order).
        left = self.config.capacity - int(caps.sum())
        for i in np.argsort(-(exact - caps), kind="stable")[:left]:
            caps[i] += 1
        return dict(zip(names, caps.tolist(), strict=True))

    # -- drawing ----------------------------------------------------------------------------
    def sample(self, n: int, *, through: date, salt: int = 1) -> pl.DataFrame:
        """Draw ``n`` distinct windows with ``dt <= through`` uniformly, seeded by (seed, day).

        Returns ``series_id``, ``dt`` (sorted). Uniform over the buffer is stratified in
        expectation, because the buffer itself holds each stratum in proportion.
        """
        pool = self.windows_.filter(pl.col("dt") <= through).sort("dt", "series_id")
        n = min(max(n, 0), pool.height)
        rng = np.random.default_rng([self.config.seed, through.toordinal(), salt])
        idx = (
            np.sort(rng.choice(pool.height, size=n, replace=False))
            if n
            else np.array([], dtype=np.int64)
        )
        return pool[idx].select("series_id", "dt")

    # -- persistence (pipelines writes the files) -------------------------------------------
    def to_frames(self) -> tuple[pl.DataFrame, dict[str, Any]]:
        """The windows frame and a JSON-able manifest; :meth:`from_frames` restores both."""
        manifest = {
            "version": MANIFEST_VERSION,
            "config": asdict(self.config),
            "seen": dict(sorted(self.seen_.items())),
            "last_dt": None if self.last_dt_ is None else self.last_dt_.isoformat(),
            "rows": self.windows_.height,
            "digest": f"{int(self.windows_.hash_rows(seed=0).sum()) & 0xFFFFFFFF:08x}"
            if self.windows_.height
            else "0",
        }
        return self.windows_, manifest

    @classmethod
    def from_frames(cls, windows: pl.DataFrame, manifest: dict[str, Any]) -> ReplayBuffer:
        """Rebuild a buffer from :meth:`to_frames` output; a row-count mismatch is an error."""
        if manifest.get("version") != MANIFEST_VERSION:
            raise ValueError(f"unsupported replay manifest version {manifest.get('version')!r}")
        if windows.height != manifest["rows"]:
            raise ValueError(
                f"replay windows hold {windows.height} rows; the manifest says {manifest['rows']}"
            )
        buf = cls(BufferConfig(**manifest["config"]))
        buf.windows_ = windows.select(WINDOW_COLUMNS).cast({"dt": pl.Date}).sort("dt", "series_id")
        buf.seen_ = {k: int(v) for k, v in manifest["seen"].items()}
        buf.last_dt_ = (
            None if manifest["last_dt"] is None else date.fromisoformat(manifest["last_dt"])
        )
        return buf


def refresh_set(
    buffer: ReplayBuffer, new: pl.DataFrame, *, through: date, replay_ratio: float
) -> pl.DataFrame:
    """The windows one refresh trains on: every new window plus a seeded replay draw.

    Args:
        buffer: the buffer *before* the new windows are added (replay is strictly the past).
        new: the new windows' keys (``series_id``, ``dt``, ...), all with ``dt <= through``.
        through: the refresh day; no window may end after it (the leakage guard).
        replay_ratio: replay windows per new window.

    Returns:
        ``series_id``, ``dt``, ``replay`` (bool): new windows first, then replayed ones.
    """
    if new.height and last_day(new) > through:
        raise ValueError(f"a new window ends after {through}: that would train on the future")
    fresh = new.select("series_id", "dt").unique().sort("dt", "series_id")
    drawn = buffer.sample(round(replay_ratio * fresh.height), through=through)
    drawn = drawn.join(fresh, on=["series_id", "dt"], how="anti")
    return pl.concat(
        [
            fresh.with_columns(pl.lit(False).alias("replay")),
            drawn.with_columns(pl.lit(True).alias("replay")),
        ]
    )
