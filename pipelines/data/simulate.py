"""The censored-demand simulator: FreshRetailNet-50K-shaped data with known latent demand.

Demand is drawn first, hour by hour, from a hierarchical model (city/store/category
levels with lognormal base rates, season, holidays and weekdays, discount elasticity,
promotion lift, weather, per-category intraday profiles, gamma-Poisson noise). Sales are
then what an imperfect inventory lets through: every day starts with the stock left
over from the day before, a delivery arrives in the early morning (sometimes late,
sometimes not at all) and tops the stock up to a target set from a noisy forecast of
past *sales* (allowing for the promotions and discounts the store itself sets), scaled
by supply spells that last days to weeks, and each hour sells ``min(demand, stock)``.
Once the stock runs out the hour is flagged and stays flagged until the next delivery
(the next morning, or a midday top-up some stores call in), through the night too, so
censoring depends on demand as in a real store, and on supply as well.
``truth.parquet`` keeps the demand before censoring.

Demand and stock are counted in tenths (the real hourly sales are multiples of 0.1);
``sale_amount`` is the sum of the hourly values as written.

Calibration: ``benchmarks/simulator_realism.py`` compares a simulation with the real
train split (stockout share and hours, night flags, sales quantiles, hourly profile,
covariate shares, weather ranges). How strongly stockouts pick busy days (which sets the
clean-day bias of a demand forecast) is calibrated with ``benchmarks/bias_by_origin.py``;
see ``docs/data.md``.
"""

from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.data import simulate_world as prof
from pipelines.data.contract import HOURS, RAW_SCHEMA, TRUTH_SCHEMA
from pipelines.data.io import write_parquet

MAX_SERIES = 50_000
# Series per chunk: bounds peak memory, and fixes the random streams (one per chunk),
# so the output depends only on the config.
CHUNK_SERIES = 4096
UNIT = 10  # demand and stock are counted in tenths
_MAX_WORKERS = 2  # chunks in flight; each holds a few hundred MB

# Delivery hour when a delivery comes (calibrated on the night flags' decay to hour 6).
_DELIVERY_HOURS = np.arange(0, 10)
_DELIVERY_PROBS = np.array([0.04, 0.02, 0.05, 0.12, 0.17, 0.25, 0.29, 0.03, 0.02, 0.01])
_WEEKDAY_EFFECT = np.array([1.0, 0.98, 0.98, 0.99, 1.04, 1.02, 0.99])
# Stockouts pick a series' busy days only as strongly as the real ones do when demand's
# day-to-day noise is modest, the store plans for most of its own discounts' lift, and
# supply comes in spells; busy series stock out more. See docs/data.md, "Clean-day bias".
_LOG_LEVEL = 1.97  # log of the typical series' base rate (tenths a day)
_DAY_NOISE_SHAPE, _BLOCK_NOISE_SHAPE = 20.0, 6.0  # gamma shapes: series-day, 3-hour block
_PLANNED_DISCOUNT_LIFT = 0.7  # share of a discount's (log) demand lift the order allows for
_SUPPLY_SD, _SUPPLY_RHO = 0.4, 0.85  # log supply factor per series-day: AR(1)
_SAFETY_VOLUME_EXP = 0.2  # safety stock ∝ base rate^-0.2: fast movers are stocked tighter


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. The same config always gives byte-identical files."""

    series: int = 1000
    days: int = 90
    eval_days: int = 7
    seed: int = 0
    start: dt.date = dt.date(2024, 3, 28)

    def __post_init__(self) -> None:
        for name in ("series", "days", "eval_days", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.series <= MAX_SERIES:
            raise ValueError(f"series must be between 1 and {MAX_SERIES}, got {self.series}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.eval_days < 0:
            raise ValueError(f"eval_days must be at least 0, got {self.eval_days}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not isinstance(self.start, dt.date) or isinstance(self.start, dt.datetime):
            raise ValueError(f"start must be a datetime.date, got {self.start!r}")

    @property
    def total_days(self) -> int:
        return self.days + self.eval_days


@dataclass(frozen=True)
class SimulatedData:
    """The simulated hub splits (``RAW_SCHEMA``) and the latent demand (``TRUTH_SCHEMA``)."""

    train: pl.DataFrame
    eval: pl.DataFrame
    truth: pl.DataFrame


@dataclass(frozen=True)
class _World:
    """Everything shared across series: hierarchy, calendar, weather, category effects."""

    hierarchy: prof.Hierarchy
    dates: list[str]
    holiday: np.ndarray  # (days,) int32
    day_level: np.ndarray  # (days,) season × weekday
    weather: dict[str, np.ndarray]  # stores × days
    profiles: np.ndarray  # first categories × 24
    product_promo: np.ndarray  # products × days, bool
    base_rate: np.ndarray  # per series: mean daily demand in tenths before effects
    holiday_effect: np.ndarray  # per first category
    elasticity: np.ndarray
    promo_lift: np.ndarray
    temp_coef: np.ndarray


def _base_rates(h: prof.Hierarchy, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed base demand per series: product × store × city × series effects.

    The log rates are centred, so the typical level does not depend on which few
    products a small simulation happens to draw.
    """
    product = rng.normal(0.0, 0.4, h.n_products)
    store = rng.normal(0.0, 0.3, h.n_stores) + rng.normal(0.0, 0.1, h.n_cities)[h.store_city]
    # The heavy tail sits at the series level (a few store-product hits), so it averages
    # out instead of hinging on which products a simulation draws.
    series = 0.4 * rng.standard_t(4, len(h.store_id))
    log_rate = product[h.product_id] + store[h.store_id] + series
    # The published series all sell regularly (the lowest series mean is 0.22 a day, the
    # highest 19): clip the log rate instead of letting the tails make dead or absurd series.
    return np.asarray(np.exp(_LOG_LEVEL + np.clip(log_rate - log_rate.mean(), -0.85, 3.3)))


def _build_world(config: SimulationConfig) -> _World:
    rng = np.random.default_rng([config.seed, 0])
    hierarchy = prof.build_hierarchy(config.series, rng)
    dates, holiday, weekday, doy = prof.calendar(config.start, config.total_days)
    n_days, n_first, n_products = config.total_days, hierarchy.n_first, hierarchy.n_products
    # Promotions are mostly chain-wide per product: a two-state Markov chain per product
    # whose stationary share is the product's promotion propensity.
    propensity = rng.beta(0.6, 0.8, n_products)
    # Centre the series-weighted share, so a small simulation dominated by a few popular
    # products still has the real promotion share.
    carried = np.bincount(hierarchy.product_id, minlength=n_products)
    for _ in range(3):
        propensity = np.clip(propensity * 0.41 / np.average(propensity, weights=carried), 0, 0.98)
    switch = 0.3
    promo = np.empty((n_products, n_days), dtype=bool)
    promo[:, 0] = rng.random(n_products) < propensity
    for t in range(1, n_days):
        u = rng.random(n_products)
        promo[:, t] = np.where(
            promo[:, t - 1], u >= switch * (1 - propensity), u < switch * propensity
        )
    return _World(
        hierarchy=hierarchy,
        dates=dates,
        holiday=holiday,
        day_level=prof.seasonal_level(doy) * _WEEKDAY_EFFECT[weekday],
        weather=prof.weather(hierarchy.store_city, hierarchy.n_cities, doy, rng),
        profiles=prof.demand_profiles(n_first, rng),
        product_promo=promo,
        base_rate=_base_rates(hierarchy, rng),
        holiday_effect=np.exp(rng.normal(0.22, 0.08, n_first)),
        # Real clean days sell 1.23× more at a deep discount (< 0.88) than at full price.
        elasticity=rng.uniform(0.3, 1.1, n_first),
        promo_lift=rng.uniform(0.05, 0.25, n_first),
        temp_coef=rng.normal(0.0, 0.1, n_first),
    )


def _covariates(
    world: _World, product: np.ndarray, n_days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Activity flags and discounts per series-day (n × days)."""
    n = len(product)
    u = rng.random((n, n_days))
    active = np.where(world.product_promo[product], u < 0.9, u > 0.97)
    # Outside promotions some series are marked down often (e.g. near expiry), some never.
    markdown = rng.random((n, n_days)) < rng.beta(0.8, 2.7, n)[:, None]
    promo_depth = np.clip(rng.normal(0.80, 0.09, (n, n_days)), 0.35, 0.99)
    markdown_depth = np.clip(rng.normal(0.91, 0.045, (n, n_days)), 0.6, 0.99)
    promo_price = np.where(rng.random((n, n_days)) < 0.977, promo_depth, 1.0)
    discount = np.round(np.where(active, promo_price, np.where(markdown, markdown_depth, 1.0)), 3)
    return active, discount


def _hourly_demand(
    world: _World,
    lo: int,
    hi: int,
    active: np.ndarray,
    discount: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Latent hourly demand in tenths (n × days × 24) and each series' base rate."""
    h = world.hierarchy
    cat, store = h.first_category_id[lo:hi], h.store_id[lo:hi]
    n, n_days = active.shape
    base = world.base_rate[lo:hi]
    temp = world.weather["avg_temperature"][store]
    rain = world.weather["precpt"][store]
    effects = (
        world.day_level[None, :]
        * np.where(world.holiday[None, :] == 1, world.holiday_effect[cat][:, None], 1.0)
        * discount ** (-world.elasticity[cat][:, None])
        * (1.0 + world.promo_lift[cat][:, None] * active)
        * np.exp(-0.01 * rain + world.temp_coef[cat][:, None] * (temp - 22.0) / 10.0)
    )
    day_rate = (
        base[:, None] * effects * rng.gamma(_DAY_NOISE_SHAPE, 1 / _DAY_NOISE_SHAPE, (n, n_days))
    )
    rate = day_rate[:, :, None] * world.profiles[cat][:, None, :]
    # Gamma noise per 3-hour block (busy or quiet spells) makes the hourly counts
    # over-dispersed; drawing it per block rather than per hour saves two thirds of draws.
    blocks = rng.standard_gamma(_BLOCK_NOISE_SHAPE, (n, n_days, HOURS // 3)) / _BLOCK_NOISE_SHAPE
    rate.reshape(n, n_days, HOURS // 3, 3)[...] *= blocks[..., None]
    return rng.poisson(rate), base


def _censor(
    demand: np.ndarray,
    base: np.ndarray,
    known: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the inventory day by day; return hourly sales (tenths) and stockout flags.

    ``known`` is what the store manager knows ahead of each day (holiday, promotion and
    most of the discount uplift). The forecast behind each order is an exponentially
    weighted mean of past *sales*, bumped after a stockout: an imperfect rule, so
    censoring feeds back into the next orders, as it does in real stores. What arrives is
    scaled by a supply factor that drifts over days (allocations, short deliveries), so
    stockouts come in spells as the real ones do (a stockout day is followed by another
    about 61 % of the time, a clean day by a stockout 30 %). Deliveries come between 0:00
    and 9:00, are sometimes missed (in runs), and some stores top up a sold-out product at
    midday. An hour is flagged when the shelf is empty or holds less than that hour's demand.
    """
    n, n_days, _ = demand.shape
    # Busy series stock out more (real: 42 % of days in the quietest quarter, 49 % in the
    # busiest): shelf space and minimum displays keep slow movers relatively well stocked.
    log_volume = np.log(base) - _LOG_LEVEL
    safety = np.exp(rng.normal(np.log(1.17), 0.2, n) - _SAFETY_VOLUME_EXP * log_volume)
    # Missed deliveries (supply outages) come in runs: a missed day is often followed by
    # another, as the real full-day stockouts are.
    miss_prob = rng.beta(0.6, 12.0, n)
    miss_draw = rng.random((n, n_days))
    missed = np.empty((n, n_days), dtype=bool)
    missed[:, 0] = miss_draw[:, 0] < miss_prob
    for t in range(1, n_days):
        missed[:, t] = miss_draw[:, t] < np.where(missed[:, t - 1], 0.45, miss_prob)
    delivery = rng.choice(_DELIVERY_HOURS, size=(n, n_days), p=_DELIVERY_PROBS)
    delivery = np.where(missed, HOURS, delivery)
    order_noise = np.exp(
        rng.normal(0.0, 0.15, (n, n_days))
        + prof.autoregressive(rng, (n, n_days), _SUPPLY_SD, _SUPPLY_RHO)
    )
    # Some stores call in a top-up delivery around midday when a product has sold out.
    topup_prob = np.asarray(rng.beta(1.0, 4.0, n))
    topup = rng.random((n, n_days)) < topup_prob[:, None]
    topup_hour = np.where(topup, rng.integers(11, 18, (n, n_days)), HOURS)
    topup_size = rng.uniform(0.2, 0.5, (n, n_days))
    forecast = base * np.exp(rng.normal(0.0, 0.25, n))
    stock = np.where(rng.random(n) < 0.4, 0, np.round(forecast * 0.3 * rng.random(n)))
    stock = stock.astype(np.int64)
    sales = np.empty_like(demand)
    flags = np.empty(demand.shape, dtype=np.int32)
    day_sales = np.empty((HOURS, n), dtype=demand.dtype)
    day_flags = np.empty((HOURS, n), dtype=bool)
    alpha = 0.3
    for t in range(n_days):
        dem = np.ascontiguousarray(demand[:, t, :].T)
        plan = forecast * safety * known[:, t] * order_noise[:, t]
        target = np.maximum(np.round(plan).astype(np.int64), 1)
        order = np.maximum(target - stock, 0)
        refill = np.maximum(np.round(plan * topup_size[:, t]).astype(np.int64), 1)
        for hour in range(HOURS):
            stock += np.where(delivery[:, t] == hour, order, 0)
            stock += np.where((topup_hour[:, t] == hour) & (stock == 0), refill, 0)
            sold = np.minimum(dem[hour], stock)
            # Censored hour: nothing on the shelf, or less than was wanted.
            day_flags[hour] = (stock == 0) | (dem[hour] > stock)
            day_sales[hour] = sold
            stock -= sold
        sales[:, t, :] = day_sales.T
        flags[:, t, :] = day_flags.T
        # After a stockout the manager knows demand was at least the sales, and does not
        # let the forecast fall (else a store that sold out would order less and less).
        ran_out = day_flags[6:22].any(axis=0)
        observed = day_sales.sum(axis=0) / known[:, t]
        observed = np.where(ran_out, np.maximum(1.3 * observed, 1.1 * forecast), observed)
        forecast = (1 - alpha) * forecast + alpha * observed
    return sales, flags


def _simulate_chunk(
    world: _World, config: SimulationConfig, lo: int, hi: int, chunk: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng([config.seed, 1, chunk])
    h = world.hierarchy
    n_days = config.total_days
    active, discount = _covariates(world, h.product_id[lo:hi], n_days, rng)
    demand, base = _hourly_demand(world, lo, hi, active, discount, rng)
    cat = h.first_category_id[lo:hi]
    known = (
        np.where(world.holiday[None, :] == 1, 1.2, 1.0)
        * (1.0 + world.promo_lift[cat][:, None] * active)
        * discount ** (-_PLANNED_DISCOUNT_LIFT * world.elasticity[cat][:, None])
    )
    sales, flags = _censor(demand, base, known, rng)
    del rng

    n = hi - lo
    ids = {
        col: getattr(h, col)[lo:hi]
        for col in ("city_id", "store_id", "management_group_id", "first_category_id",
                    "second_category_id", "third_category_id", "product_id")
    }  # fmt: skip
    store = h.store_id[lo:hi]
    day_cols = {
        "discount": discount,
        "holiday_flag": np.broadcast_to(world.holiday[None, :], (n, n_days)),
        "activity_flag": active,
        **{k: v[store] for k, v in world.weather.items()},
    }

    def split(days: slice, n_split: int) -> pl.DataFrame:
        hours_sale = (sales[:, days, :] / UNIT).reshape(-1, HOURS)
        stock_status = flags[:, days, :].reshape(-1, HOURS)
        columns: dict[str, pl.Series] = {
            col: pl.Series(col, np.repeat(values, n_split)) for col, values in ids.items()
        }
        columns["dt"] = pl.Series("dt", world.dates[days]).gather(np.tile(np.arange(n_split), n))
        columns["sale_amount"] = pl.Series(hours_sale.sum(axis=1))
        columns["hours_sale"] = pl.Series(hours_sale)
        columns["stock_hour6_22_cnt"] = pl.Series(stock_status[:, 6:22].sum(axis=1))
        columns["hours_stock_status"] = pl.Series(stock_status)
        for col, values in day_cols.items():
            columns[col] = pl.Series(np.ascontiguousarray(values[:, days]).reshape(-1))
        return pl.DataFrame([columns[c].alias(c) for c in RAW_SCHEMA]).cast(pl.Schema(RAW_SCHEMA))

    train = split(slice(0, config.days), config.days)
    evaluation = split(slice(config.days, n_days), config.eval_days)
    hours_demand = demand.reshape(-1, HOURS) / UNIT
    truth = pl.DataFrame(
        [
            pl.Series("store_id", np.repeat(ids["store_id"], n_days)),
            pl.Series("product_id", np.repeat(ids["product_id"], n_days)),
            pl.Series("dt", world.dates).gather(np.tile(np.arange(n_days), n)).alias("dt"),
            pl.Series("hours_demand", hours_demand),
            pl.Series("demand_amount", hours_demand.sum(axis=1)),
        ]
    ).cast(pl.Schema(TRUTH_SCHEMA))
    return train, evaluation, truth


def simulate(config: SimulationConfig) -> SimulatedData:
    """Simulate the train and eval splits and the latent demand behind them.

    Returns frames in the hub schema (``RAW_SCHEMA``: hierarchy ids, dt, sale_amount,
    hours_sale, stock_hour6_22_cnt, hours_stock_status, discount, holiday_flag,
    activity_flag, weather), sorted by store_id, product_id and dt, and ``truth`` in
    ``TRUTH_SCHEMA`` (hours_demand, demand_amount) for the train and eval days.
    """
    world = _build_world(config)
    starts = list(range(0, config.series, CHUNK_SERIES))

    def run(chunk: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        lo = starts[chunk]
        return _simulate_chunk(world, config, lo, min(lo + CHUNK_SERIES, config.series), chunk)

    # Chunks own their random streams, so running two at a time (numpy's samplers release
    # the GIL) changes nothing in the output; map() keeps the chunk order.
    workers = min(_MAX_WORKERS, len(starts), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, range(len(starts))))
    else:
        parts = [run(chunk) for chunk in range(len(starts))]
    train, evaluation, truth = (pl.concat([p[i] for p in parts], rechunk=False) for i in range(3))
    return SimulatedData(train=train, eval=evaluation, truth=truth)


def write_simulation(config: SimulationConfig, out: Path) -> dict[str, Path]:
    """Simulate and write ``out/train.parquet``, ``out/eval.parquet`` and ``out/truth.parquet``.

    Each file is written atomically; the same config gives byte-identical files.
    """
    data = simulate(config)
    return {
        name: write_parquet(frame, out / f"{name}.parquet")
        for name, frame in (("train", data.train), ("eval", data.eval), ("truth", data.truth))
    }
