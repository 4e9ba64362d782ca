"""The LightGBM update's score cache: raw scores of replayed rows, kept between updates.

Continuing from ~200 trees first needs each row's raw score under all of them, and that
per-row cost dominates an update. ``LGBMForecaster.replay_scores_`` keeps, for the rows of
windows that may be replayed, the raw score, the number of trees it covers and a hash of the
features it was read on: a row replayed later only runs the trees added since
(:func:`raw_scores`), and only when its features are unchanged (:func:`prior_scores`).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl

from models.forecasters.lgbm_rows import KEY

FloatArray = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float32]
_SPOT_CHECK_ROWS = 16


def raw_scores(
    booster: lgb.Booster,
    x: Matrix,
    prior: FloatArray,
    done: npt.NDArray[np.int64],
    *,
    num_threads: int,
) -> FloatArray:
    """Raw scores of the rows ``x`` under all of ``booster``'s trees, from partial sums.

    ``prior[i]`` is row i's raw score under the booster's first ``done[i]`` trees (0.0 and 0:
    nothing known), so only trees ``done[i]`` onward are evaluated. A row replayed again
    thus runs only the trees added since its last refresh, not the whole ensemble.
    """
    total = booster.current_iteration()
    out = np.array(prior, dtype=np.float64)
    for k in np.unique(done):
        if k == total:
            continue
        idx = np.flatnonzero(done == k)
        out[idx] += booster.predict(
            x[idx],
            raw_score=True,
            start_iteration=int(k),
            num_iteration=total - int(k),
            num_threads=num_threads,
        )
    return out


def feature_hash(x: Matrix) -> npt.NDArray[np.uint64]:
    """One hash per row of what the model reads: a cached score is reused only on equal rows."""
    return pl.DataFrame(x).hash_rows(seed=0).to_numpy()


def prior_scores(
    cache: pl.DataFrame | None, keys: pl.DataFrame, fhash: npt.NDArray[np.uint64]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Cached (raw, trees done) per row of ``keys``; (0.0, 0) where absent or features changed."""
    if cache is None or cache.height == 0:
        return np.zeros(keys.height), np.zeros(keys.height, dtype=np.int64)
    hit = (pl.col("fhash") == pl.col("_now")).fill_null(False)
    j = (
        keys.select(KEY)
        .with_columns(pl.Series("_now", fhash, dtype=pl.UInt64))
        .join(cache, on=list(KEY), how="left", maintain_order="left")
        .select(
            pl.when(hit).then(pl.col("raw")).otherwise(0.0).alias("raw"),
            pl.when(hit).then(pl.col("iters")).otherwise(0).cast(pl.Int64).alias("iters"),
        )
    )
    return j["raw"].to_numpy(), j["iters"].to_numpy()


def cached_raw_scores(
    booster: lgb.Booster,
    x: Matrix,
    prior: FloatArray,
    done: npt.NDArray[np.int64],
    *,
    num_threads: int,
) -> tuple[FloatArray, bool]:
    """:func:`raw_scores`, and whether the cache was this booster's (else a full predict).

    The cache is only valid if the booster's first ``done`` trees are the ones it was
    computed with: ``continue`` only ever appends trees, and the cache travels with the
    model, so this holds unless the boosters were swapped behind its back. That is caught
    by re-scoring a few cached rows in full, which costs nothing next to the update.
    """
    cold = (np.zeros(len(x)), np.zeros(len(x), dtype=np.int64))
    if (done > booster.current_iteration()).any():
        return raw_scores(booster, x, *cold, num_threads=num_threads), False
    out = raw_scores(booster, x, prior, done, num_threads=num_threads)
    hit = np.flatnonzero(done > 0)
    if hit.size:
        spot = hit[:: max(1, hit.size // _SPOT_CHECK_ROWS)][:_SPOT_CHECK_ROWS]
        fresh = booster.predict(x[spot], raw_score=True, num_threads=num_threads)
        if not np.allclose(out[spot], fresh, rtol=0.0, atol=1e-6):
            return raw_scores(booster, x, *cold, num_threads=num_threads), False
    return out, True


def next_scores(
    cache: pl.DataFrame | None,
    fresh: list[pl.DataFrame],
    windows: pl.DataFrame,
    pool: pl.DataFrame | None,
) -> pl.DataFrame | None:
    """The score cache after an update: this update's init scores, plus the older entries
    of windows still in ``pool`` (the replay buffer), so it stays as small as the buffer.
    """
    parts = list(fresh)
    if cache is not None and pool is not None:
        keep = pl.concat([pool.select("series_id", "dt"), windows.select("series_id", "dt")])
        older = cache.join(keep.unique(), on=["series_id", "dt"], how="semi")
        if fresh:
            older = older.join(pl.concat(fresh).select(KEY), on=list(KEY), how="anti")
        parts.insert(0, older)
    return pl.concat(parts) if parts else None
