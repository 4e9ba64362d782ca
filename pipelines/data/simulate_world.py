"""The simulator's fixed world: hierarchies, calendar, weather, intraday profiles, and the
realism metrics that compare a simulated split with the real one.

Everything here is shared by all series (or all series of a store / product), so it is
built once per simulation from its own random stream; :mod:`pipelines.data.simulate` then
draws the series themselves chunk by chunk. The constants were measured on the real
FreshRetailNet-50K train split (see ``benchmarks/simulator_realism.py``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.data.contract import BUSINESS_HOURS, HOURS

# Real sizes at 50,000 series: cities, stores, and the product tree from the top down.
REAL_SERIES = 50_000
REAL_CITIES = 18
REAL_STORES = 898
REAL_PRODUCTS_PER_STORE = 55.7
REAL_CATEGORY_LEVELS = (7, 32, 84, 233, 865)  # management group > first > second > third > product

# Observed share of sales per hour (real train split), and the share of series-days
# flagged out of stock per hour. Demand is less peaked at the end of the day than sales,
# because afternoon sales are cut by stockouts; the demand profile undoes part of that.
OBSERVED_HOURLY_SHARE = np.array(
    [0.0085, 0.0050, 0.0030, 0.0022, 0.0026, 0.0102, 0.0310, 0.0604, 0.0928, 0.1070, 0.0993, 0.0715,
     0.0542, 0.0504, 0.0592, 0.0764, 0.0807, 0.0591, 0.0388, 0.0300, 0.0253, 0.0156, 0.0105, 0.0062]
)  # fmt: skip
OBSERVED_FLAG_SHARE = np.array(
    [0.411, 0.400, 0.375, 0.329, 0.267, 0.174, 0.062, 0.050, 0.057, 0.071, 0.094, 0.123,
     0.148, 0.166, 0.180, 0.199, 0.240, 0.293, 0.336, 0.364, 0.387, 0.410, 0.419, 0.418]
)  # fmt: skip

# One calibration pass: simulated sales share / real sales share per hour, averaged over
# seeds. Dividing the demand profile by it makes the *censored* profile match the real one.
_PROFILE_CALIBRATION = np.array(
    [1.00, 0.97, 1.01, 0.95, 1.00, 0.98, 1.05, 1.05, 1.03, 1.08, 1.06, 1.04,
     1.04, 1.04, 0.99, 0.97, 0.91, 0.91, 0.88, 0.91, 0.90, 0.89, 0.90, 0.85]
)  # fmt: skip

_FIXED_HOLIDAYS = {(1, 1), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), *((10, d) for d in range(1, 8))}
_HOLIDAYS_2024 = {
    *(dt.date(2024, 2, d) for d in range(10, 18)),
    dt.date(2024, 4, 4),
    dt.date(2024, 4, 5),
    dt.date(2024, 4, 6),
    dt.date(2024, 6, 10),
    dt.date(2024, 9, 15),
    dt.date(2024, 9, 16),
    dt.date(2024, 9, 17),
}
_WORKDAYS_2024 = {dt.date(2024, 4, 7)}


@dataclass(frozen=True)
class Hierarchy:
    """Per-series ids (sorted by store, product) and the size of each level."""

    city_id: np.ndarray
    store_id: np.ndarray
    management_group_id: np.ndarray
    first_category_id: np.ndarray
    second_category_id: np.ndarray
    third_category_id: np.ndarray
    product_id: np.ndarray
    n_cities: int
    n_stores: int
    n_products: int
    n_first: int
    store_city: np.ndarray  # city of each store


def _nest(n_child: int, n_parent: int, rng: np.random.Generator) -> np.ndarray:
    """Parent index of each child; every parent gets at least one child."""
    weights = rng.lognormal(0.0, 0.8, n_parent)
    extra = rng.choice(n_parent, n_child - n_parent, p=weights / weights.sum())
    return rng.permutation(np.concatenate([np.arange(n_parent), extra]))


def _store_sizes(n_series: int, n_stores: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Products per store: lognormal weights, each store 1..cap, summing to n_series."""
    weights = rng.lognormal(0.0, 0.55, n_stores)
    raw = 1 + (n_series - n_stores) * weights / weights.sum()
    sizes = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[: n_series - sizes.sum()]] += 1
    # Move any overflow above the cap to the stores with the most room.
    sizes = np.minimum(sizes, cap)
    while (deficit := n_series - int(sizes.sum())) > 0:
        room = cap - sizes
        take = np.argsort(-room, kind="stable")[: min(deficit, int((room > 0).sum()))]
        sizes[take] += 1
    return np.asarray(sizes)


def build_hierarchy(n_series: int, rng: np.random.Generator) -> Hierarchy:
    """Cities > stores and management group > ... > product, scaled down for small N.

    At 50,000 series the sizes match the real data (18 cities, 898 stores, 865 products
    in a 7/32/84/233 category tree); smaller simulations get fewer stores (about 56
    products each) and a proportionally thinner product tree.
    """
    n_stores = min(REAL_STORES, max(min(n_series, 3), round(n_series / REAL_PRODUCTS_PER_STORE)))
    # 898 stores in 18 cities: cities grow like the square root of the store count.
    n_cities = min(REAL_CITIES, n_stores, max(2, round(0.6 * math.sqrt(n_stores))))
    ratio = min(1.0, n_series / REAL_SERIES)
    n_products = min(865, max(math.ceil(1.5 * n_series / n_stores), round(865 * ratio**0.5)))
    levels = [max(2, min(real, round(real * (n_products / 865) ** 0.75))) for real in
              REAL_CATEGORY_LEVELS[:-1]]  # fmt: skip
    levels.append(n_products)
    for i in range(len(levels) - 2, -1, -1):  # each level no wider than the one below
        levels[i] = min(levels[i], levels[i + 1])
    parents = [_nest(levels[i + 1], levels[i], rng) for i in range(len(levels) - 1)]
    third_of_product = parents[3]
    second_of_product = parents[2][third_of_product]
    first_of_product = parents[1][second_of_product]
    group_of_product = parents[0][first_of_product]

    store_city = _nest(n_stores, n_cities, rng)
    sizes = _store_sizes(n_series, n_stores, n_products, rng)
    popularity = rng.lognormal(0.0, 1.6, n_products)
    popularity /= popularity.sum()
    products = [
        np.sort(rng.choice(n_products, size, replace=False, p=popularity)) for size in sizes
    ]
    product = np.concatenate(products).astype(np.int64)
    store = np.repeat(np.arange(n_stores, dtype=np.int64), sizes)
    return Hierarchy(
        city_id=store_city[store].astype(np.int64),
        store_id=store,
        management_group_id=group_of_product[product].astype(np.int64),
        first_category_id=first_of_product[product].astype(np.int64),
        second_category_id=second_of_product[product].astype(np.int64),
        third_category_id=third_of_product[product].astype(np.int64),
        product_id=product,
        n_cities=n_cities,
        n_stores=n_stores,
        n_products=n_products,
        n_first=levels[1],
        store_city=store_city,
    )


def calendar(start: dt.date, n_days: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Day strings, holiday flags (weekends and public holidays), weekday and day of year."""
    dates = [start + dt.timedelta(days=i) for i in range(n_days)]
    holiday = np.array(
        [
            d not in _WORKDAYS_2024
            and (d.weekday() >= 5 or (d.month, d.day) in _FIXED_HOLIDAYS or d in _HOLIDAYS_2024)
            for d in dates
        ],
        dtype=np.int32,
    )
    weekday = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=np.float64)
    return [d.isoformat() for d in dates], holiday, weekday, doy


def autoregressive(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, rho: float
) -> np.ndarray:
    """Stationary AR(1) paths along the last axis (rows × days), each value ~ N(0, scale²)."""
    eps = rng.normal(0.0, scale, shape)
    out = np.empty_like(eps)
    out[:, 0] = eps[:, 0]
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + math.sqrt(1 - rho**2) * eps[:, t]
    return out


def seasonal_level(doy: np.ndarray) -> np.ndarray:
    """Demand level over the year: low in winter, high in summer (fresh produce)."""
    return 1.0 + 0.3 * np.sin(2 * np.pi * (doy - 105) / 365)


def weather(
    store_city: np.ndarray, n_cities: int, doy: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Daily weather per store (stores × days): city-level AR(1) weather plus store noise.

    Temperature follows the season (about 17 °C in late March to 28 °C in late June);
    rain is lognormal and heavier in June; humidity rises with rain.
    """
    n_days = len(doy)

    def ar1(scale: float, rho: float = 0.7) -> np.ndarray:
        return autoregressive(rng, (n_cities, n_days), scale, rho)

    city_temp = rng.normal(0.0, 1.8, (n_cities, 1))
    season = 19.0 - 10.0 * np.cos(2 * np.pi * (doy - 15) / 365)
    temp_c = season + city_temp + ar1(1.6)
    rain_median = 1.8 + 3.0 * np.clip((doy - 140) / 40, 0, 1)
    rain_c = rain_median * np.exp(rng.normal(0.0, 0.3, (n_cities, 1)) + ar1(0.9, rho=0.4))
    # Humidity is left-skewed (mostly 70-85 %, down to 27 % on dry days): model dryness.
    dryness = 30.0 * np.exp(rng.normal(0.0, 0.15, (n_cities, 1)) + ar1(0.33))
    hum_c = 100.0 - dryness * np.exp(-0.3 * np.log1p(rain_c))
    wind_c = 1.7 * np.exp(rng.normal(0.0, 0.12, (n_cities, 1)) + ar1(0.22))
    n_stores = len(store_city)

    def store_view(city_values: np.ndarray, noise: float) -> np.ndarray:
        return np.asarray(city_values[store_city] + rng.normal(0.0, noise, (n_stores, n_days)))

    return {
        "precpt": np.round(np.clip(store_view(rain_c, 0.2), 0.0, 42.5), 4),
        "avg_temperature": np.round(np.clip(store_view(temp_c, 0.3), 12.0, 31.0), 2),
        "avg_humidity": np.round(np.clip(store_view(hum_c, 1.0), 27.0, 100.0), 2),
        "avg_wind_level": np.round(np.clip(store_view(wind_c, 0.05), 0.97, 3.85), 2),
    }


def demand_profiles(n_first: int, rng: np.random.Generator) -> np.ndarray:
    """Intraday demand profile per first category (n_first × 24, rows sum to 1).

    Starts from the real sales profile, lifts the hours that real stockouts cut, and
    tilts each category towards the morning or the evening.
    """
    base = OBSERVED_HOURLY_SHARE / (1.0 - 0.9 * OBSERVED_FLAG_SHARE) / _PROFILE_CALIBRATION
    hours = (np.arange(HOURS) - 12.5) / 12.0
    tilt = rng.normal(0.0, 0.2, (n_first, 1))
    bump = rng.normal(0.0, 0.1, (n_first, HOURS))
    profiles = base * np.exp(tilt * hours + bump)
    return np.asarray(profiles / profiles.sum(axis=1, keepdims=True))


def realism_metrics(frame: pl.LazyFrame | pl.DataFrame) -> dict[str, float]:
    """Summary figures of a split in the hub schema, comparable between real and simulated.

    Reads sale_amount, hours_sale, stock_hour6_22_cnt, hours_stock_status, discount,
    activity_flag, holiday_flag and the weather columns.
    """
    lf = frame.lazy()
    cnt = pl.col("stock_hour6_22_cnt")
    sale = pl.col("sale_amount")
    aggs: list[pl.Expr] = [
        pl.len().alias("rows"),
        (cnt > 0).mean().alias("stockout_day_share"),
        cnt.cast(pl.Float64).mean().alias("mean_stockout_hours"),
        (cnt == 16).mean().alias("full_day_stockout_share"),
        cnt.is_between(1, 4).mean().alias("stockout_1_4h_share"),
        cnt.is_between(5, 8).mean().alias("stockout_5_8h_share"),
        cnt.is_between(9, 15).mean().alias("stockout_9_15h_share"),
        (pl.col("hours_stock_status").list.get(0) == 1).mean().alias("night_flag_share_h0"),
        (sale == 0).mean().alias("zero_sale_day_share"),
        sale.mean().alias("sale_mean"),
        sale.median().alias("sale_median"),
        sale.quantile(0.9, interpolation="nearest").alias("sale_p90"),
        sale.quantile(0.99, interpolation="nearest").alias("sale_p99"),
        sale.filter(cnt == 0).mean().alias("sale_mean_instock_days"),
        sale.filter(cnt.is_between(1, 8)).mean().alias("sale_mean_stockout_1_8h_days"),
        (pl.col("discount") < 1).mean().alias("discount_share"),
        pl.col("discount").mean().alias("discount_mean"),
        pl.col("activity_flag").cast(pl.Float64).mean().alias("activity_share"),
        pl.col("holiday_flag").cast(pl.Float64).mean().alias("holiday_share"),
    ]
    for col in ("precpt", "avg_temperature", "avg_humidity", "avg_wind_level"):
        aggs += [pl.col(col).min().alias(f"{col}_min"), pl.col(col).mean().alias(f"{col}_mean"),
                 pl.col(col).max().alias(f"{col}_max")]  # fmt: skip
    hourly = [pl.col("hours_sale").list.get(h).sum().alias(f"h{h}") for h in range(HOURS)]
    zero_hours = pl.col("hours_sale").list.eval(pl.element() == 0).list.mean().mean()
    out = (
        lf.select(*aggs, *hourly, zero_hours.alias("zero_sale_hour_share"))
        .collect()
        .row(0, named=True)
    )
    hour_sales = np.array([out.pop(f"h{h}") for h in range(HOURS)], dtype=np.float64)
    share = hour_sales / max(hour_sales.sum(), 1e-12)
    business = list(BUSINESS_HOURS)
    out["sales_share_h0_5"] = float(share[:6].sum())
    out["sales_share_h6_11"] = float(share[6:12].sum())
    out["sales_share_h12_17"] = float(share[12:18].sum())
    out["sales_share_h18_23"] = float(share[18:].sum())
    out["peak_sales_hour"] = float(np.argmax(share[business]) + business[0])
    out["hourly_profile_l1_vs_real"] = float(np.abs(share - OBSERVED_HOURLY_SHARE).sum())
    out |= selection_metrics(lf)
    return {k: float(v) if v is not None else float("nan") for k, v in out.items()}


def selection_metrics(frame: pl.LazyFrame | pl.DataFrame) -> dict[str, float]:
    """How strongly stockouts pick busy days: what sets the clean-day bias of a forecast.

    ``within_series_stockout_sales_ratio``: sales on 1–8 h stockout days over the same
    series' clean days (weighted by stockout days); ``stockout_after_stockout`` and
    ``stockout_after_clean``: the share of days with a stockout after a day with / without
    one; ``stockout_share_busiest_q`` and ``_quietest_q``: on the quarter of series that sell
    most / least. Reads store_id, product_id, dt, sale_amount and stock_hour6_22_cnt.
    """
    series = ["store_id", "product_id"]
    cnt, sale = pl.col("stock_hour6_22_cnt"), pl.col("sale_amount")
    days = (
        frame.lazy()
        .select(*series, "dt", sale, (cnt > 0).alias("out"), cnt.is_between(1, 8).alias("part"))
        .sort(*series, "dt")
        .with_columns(pl.col("out").shift(1).over(series).alias("out_before"))
    )
    per_series = (
        days.group_by(series)
        .agg(
            sale.filter(~pl.col("out")).mean().alias("clean"),
            sale.filter(pl.col("part")).mean().alias("part"),
            pl.col("part").sum().alias("n_part"),
            sale.mean().alias("level"),
            pl.col("out").mean().alias("out"),
        )
        .with_columns((pl.col("level").rank("ordinal") / pl.len()).alias("rank"))
    )
    both = pl.col("clean").is_not_null() & pl.col("part").is_not_null()
    weighted = (pl.col("n_part") * pl.col("part")).filter(both).sum() / (
        pl.col("n_part") * pl.col("clean")
    ).filter(both).sum()
    figures = per_series.select(
        weighted.alias("within_series_stockout_sales_ratio"),
        pl.col("out").filter(pl.col("rank") > 0.75).mean().alias("stockout_share_busiest_q"),
        pl.col("out").filter(pl.col("rank") <= 0.25).mean().alias("stockout_share_quietest_q"),
    )
    after = days.select(
        pl.col("out").filter(pl.col("out_before")).mean().alias("stockout_after_stockout"),
        pl.col("out").filter(~pl.col("out_before")).mean().alias("stockout_after_clean"),
    )
    out = figures.collect().row(0, named=True) | after.collect().row(0, named=True)
    return {k: float(v) if v is not None else float("nan") for k, v in out.items()}
