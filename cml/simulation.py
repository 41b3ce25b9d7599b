"""Many futures at once: the simulation stage, where uncertainty enters.

The central forecast is one future with no shocks. Here the same roll-forward
(:func:`cml.fund.roll`) runs over thousands of draws, each a future in which, for every library:

* **self-generated income** moves around the central path by the fitted residual spread of the
  pooled model (:mod:`cml.forecasting`), persistent from year to year at the fitted lag-1
  autocorrelation, part of it a year shock shared by all libraries (``simulation.common_share``);
  and its growth rate is itself uncertain (drawn from the library's slope uncertainty), so the
  band widens with the years. Café cost of sales (``ratio`` lines) moves with it;
* **lines that come and go** (grants from other funders, fabric repairs: those lines.csv averages
  over several years) vary each year by their own measured spread, never below nil;
* **recurring costs** move by the cost model's residual spread, and the cost drift is drawn from
  its standard error, common to all libraries (inflation is one economy);
* **building failures** strike libraries that carry their own fabric (full-repairing leases, in
  that scenario) with ``simulation.building_failure_probability`` a year, at a cost drawn from a
  log-normal with the given median and 90th percentile, in first-forecast-year prices grown with
  cost inflation (``growth.costs``, dated where ``growth.costs_by_year`` says); where the scenario's fund pays failures, they are claims on it like any other.

Closures and the scenarios' dated shocks are in every draw, as in the central path. The fund is
shared within a future: one library's claim leaves less for the others in that draw. Draws are
made in chunks, each from its own ``numpy.random.SeedSequence`` child, so a run is reproducible
and memory is bounded by the chunk.

What comes out is ``risk`` (per library and year: the probability that free reserves have been
exhausted by then, and their percentiles) and ``portfolio_risk`` (per year: libraries run out,
the fund's balance and combined free reserves, as distributions).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cml.forecasting import Fits
from cml.fund import Flows, FundRules, roll

PERCENTILES = (5, 10, 25, 50, 75, 90, 95)


@dataclass(frozen=True)
class Uncertainty:
    """The spreads a scenario's draws are made from (all nil: every draw is the central path)."""

    income_sd: float  # residual sd of log self-generated income
    income_persistence: float
    income_growth_sd: np.ndarray  # (libraries,): sd of each library's growth rate
    cost_sd: float
    cost_persistence: float
    cost_drift_sd: float  # common to all libraries
    common_share: float  # share of residual variance common to all libraries in a year
    failure_probability: float
    failure_median: float
    failure_p90: float

    lumpy_scale: float  # on each lumpy line's own spread

    @classmethod
    def of(cls, fits: Fits, libraries: np.ndarray, settings: SimulationSettings) -> Uncertainty:
        k = settings.spread_scale
        return cls(
            income_sd=k * fits.self_generated.residual_sd, income_persistence=fits.self_generated.persistence,
            income_growth_sd=k * fits.self_generated.growth["growth_sd"].reindex(libraries).fillna(0.0).to_numpy(),
            cost_sd=k * fits.costs.residual_sd, cost_persistence=fits.costs.persistence,
            cost_drift_sd=k * float(fits.costs.record.get("fixed_slope_se", 0.0)), lumpy_scale=k,
            common_share=settings.common_share, failure_probability=settings.building_failure_probability,
            failure_median=settings.building_failure_cost_median, failure_p90=settings.building_failure_cost_p90)

    def without_shocks(self) -> Uncertainty:
        return replace(self, income_sd=0.0, income_growth_sd=self.income_growth_sd * 0.0, cost_sd=0.0,
                       cost_drift_sd=0.0, failure_probability=0.0, lumpy_scale=0.0)


@dataclass(frozen=True)
class SimulationSettings:
    """``[simulation]`` of assumptions.toml."""

    draws: int
    seed: int
    chunk_cells: int  # draws x libraries in one chunk
    common_share: float
    building_failure_probability: float
    building_failure_cost_median: float
    building_failure_cost_p90: float
    spread_scale: float

    @classmethod
    def of(cls, assumptions) -> SimulationSettings:
        return cls(**{f: getattr(assumptions, f"simulation_{f}") for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Exposure:
    """What the shocks act on in one scenario, as (libraries, years) arrays of the central path."""

    self_generated: np.ndarray  # self-generated income (after the scenario's levers and closures)
    linked_costs: np.ndarray  # ratio lines (café cost of sales), which move with it
    costs: np.ndarray  # other recurring trend costs
    lumpy: tuple  # (income side?, central (libraries, years), sd (libraries,)) per line that comes and goes
    carries_fabric: np.ndarray  # (libraries,): a full-repairing lease in this scenario
    horizon_years: np.ndarray  # (libraries, years): years since the library's last actual (0 in actual years)
    cost_prices: np.ndarray  # (libraries, years): cost prices over those of the library's first forecast year


class PersistentNoise:
    """Each year's deviation of a log amount from the central path, for (draws, libraries).

    The residual around each library's fitted line is AR(1) with standard deviation ``sd`` and
    lag-1 correlation ``persistence``; its innovations are part common to every library in a
    draw-year (``common_share`` of the variance). The central path starts from the last actual
    year, itself one noisy year and not the trend, so what :meth:`next` gives is the year's
    residual less the base year's: variance ``2 sd^2 (1 - persistence^h)`` after ``h`` years.
    (Treating the base year as the trend made the bands too narrow by about a third in the
    backtest.) One year at a time and in place: its three arrays (level, base, deviation) are each one
    year of one chunk.
    """

    def __init__(self, rng: np.random.Generator, draws: int, libraries: int, sd: float, persistence: float,
                 common_share: float) -> None:
        self.rng, self.shape, self.sd = rng, (draws, libraries), np.float32(sd)
        self.common_sd, self.own_sd = np.sqrt(common_share), np.sqrt(1.0 - common_share)
        self.carry, self.fresh = np.float32(persistence), np.sqrt(1.0 - persistence ** 2)
        self.base = self._shocks(1.0) if sd > 0 else None
        self.level = None if self.base is None else self.base.copy()
        self.deviation = None if self.base is None else np.empty_like(self.base)

    def _shocks(self, scale: float) -> np.ndarray:
        """Standard normal shocks times ``scale``, ``common_share`` of their variance shared by a draw's libraries."""
        own = self.rng.standard_normal(self.shape, dtype=np.float32)
        own *= np.float32(scale * self.own_sd)
        own += np.float32(scale * self.common_sd) * self.rng.standard_normal((self.shape[0], 1), dtype=np.float32)
        return own

    def next(self) -> np.ndarray | np.float32:
        """The next year's deviation (the same array each year: use it before the next call)."""
        if self.base is None:
            return np.float32(0.0)
        self.level *= self.carry
        self.level += self._shocks(self.fresh)
        np.subtract(self.level, self.base, out=self.deviation)
        self.deviation *= self.sd
        return self.deviation


def failure_cells(rng: np.random.Generator, cells: int, probability: float) -> np.ndarray:
    """The flat indices, in order, of the cells (library-years of draws) where a building fails:
    each cell independently with ``probability``, at most once. The gaps between events of a
    Bernoulli process are geometric, so about ``cells x probability`` numbers are drawn, not a
    uniform a cell (at 4% a year, a twenty-fifth of them).

    >>> failure_cells(np.random.default_rng(0), 4, 1.0).tolist()
    [0, 1, 2, 3]
    >>> failure_cells(np.random.default_rng(0), 0, 0.5).tolist()
    []
    """
    expected = cells * probability
    batch = int(expected + 6 * np.sqrt(expected)) + 16  # enough nearly always; else another batch
    found, last = [np.empty(0, np.int64)], -1
    while last < cells - 1:
        at = last + np.cumsum(rng.geometric(probability, batch))
        found.append(at)
        last = int(at[-1])
    cell = np.concatenate(found)
    return cell[cell < cells]


def draw_flows(rng: np.random.Generator, draws: int, central: Flows, exposure: Exposure, u: Uncertainty,
               pays_failures: bool) -> Flows:
    """One chunk of futures: the central flows with income, cost, lumpy-line and failure shocks.

    Shocks are drawn year by year from the first forecast year, each year's work on arrays of
    one year of the chunk (draws x libraries), written into arrays laid out years first and
    handed to :func:`cml.fund.roll` as (draws, libraries, years) views of that memory, so each
    year the roll-forward reads is one contiguous block. Drawing the normals is most of the
    cost, so the arithmetic is done in place on them.
    """
    f32 = np.float32
    n_lib, n_year = central.ahead.shape
    first = int(np.argmax(central.ahead.any(axis=0))) if central.ahead.any() else n_year

    def year_major(array: np.ndarray) -> np.ndarray:  # the central (1, libraries, years) -> (years, draws, libraries)
        out = np.empty((n_year, draws, n_lib), f32)
        out[:] = np.ascontiguousarray(array[0].T, dtype=f32)[:, None, :]  # rows in order: half the time of the strided copy
        return out

    surplus, recurring = year_major(central.surplus), year_major(central.recurring)
    failures_need = year_major(central.needs["building_failure"]) if "building_failure" in central.needs else None
    growth = rng.standard_normal((draws, n_lib), dtype=f32) * u.income_growth_sd.astype(f32)[None, :]
    drift = rng.standard_normal((draws, 1), dtype=f32) * f32(u.cost_drift_sd)
    income_noise = PersistentNoise(rng, draws, n_lib, u.income_sd, u.income_persistence, u.common_share)
    cost_noise = PersistentNoise(rng, draws, n_lib, u.cost_sd, u.cost_persistence, u.common_share)
    carries = exposure.carries_fabric
    sigma = max(np.log(u.failure_p90 / u.failure_median) / 1.2815515655446004, 0.0) if u.failure_median > 0 else 0.0
    for j in range(first, n_year):
        ahead = central.ahead[:, j]
        since = exposure.horizon_years[:, j].astype(f32)
        income_change = growth * since
        income_change += income_noise.next()
        cost_change = drift * since
        cost_change += cost_noise.next()
        for factor in (income_change, cost_change):  # now the factor on the central amount, exp(shock) - 1:
            np.exp(factor, out=factor)  # not expm1, which numpy does not vectorise (4x slower); near nil the
            factor -= f32(1.0)  # difference is below 1.2e-7 of the amount, and with no shock both are nil exactly
        spending_change = income_change * exposure.linked_costs[:, j].astype(f32)
        income_change *= exposure.self_generated[:, j].astype(f32)
        cost_change *= exposure.costs[:, j].astype(f32)
        spending_change += cost_change
        if u.lumpy_scale > 0:
            for is_income, amount, sd in exposure.lumpy:
                varies = (sd > 0) & ahead  # random numbers only where a line can vary
                columns = slice(None) if varies.all() else np.flatnonzero(varies)  # a slice copies nothing
                level = amount[columns, j].astype(f32)
                drawn = rng.standard_normal((draws, level.size), dtype=f32)
                drawn *= (u.lumpy_scale * sd[columns]).astype(f32)
                drawn += level
                np.maximum(drawn, 0.0, out=drawn)
                drawn -= level
                (income_change if is_income else spending_change)[:, columns] += drawn
        income_change -= spending_change  # now the change in the year's surplus
        if not ahead.all():  # libraries still in their accounts this year take no shock
            income_change[:, ~ahead] = 0.0
            spending_change[:, ~ahead] = 0.0
        carrying = np.flatnonzero(ahead & carries)
        if u.failure_probability > 0 and carrying.size:
            draw, which = np.divmod(failure_cells(rng, draws * carrying.size, u.failure_probability), carrying.size)
            if draw.size:
                library = carrying[which]
                cost = (u.failure_median * np.exp(sigma * rng.standard_normal(draw.size))
                        * exposure.cost_prices[library, j]).astype(f32)
                income_change[draw, library] -= cost  # one failure per library-year: no repeated cells
                if pays_failures:
                    if failures_need is None:
                        failures_need = np.zeros((n_year, draws, n_lib), f32)
                    failures_need[j][draw, library] += cost
        surplus[j] += income_change
        recurring[j] += spending_change
    needs = dict(central.needs)
    if failures_need is not None:  # the scenario's own failures, or failures the fund pays
        needs["building_failure"] = np.moveaxis(failures_need, 0, -1)
    return replace(central, surplus=np.moveaxis(surplus, 0, -1), recurring=np.moveaxis(recurring, 0, -1), needs=needs)


@dataclass(frozen=True)
class Simulated:
    """One scenario's futures: own free reserves (draws, libraries, years; NaN outside forecast
    years) and the fund's closing balance and unmet-for-want-of-money (draws, years)."""

    libraries: np.ndarray
    years: np.ndarray
    free_reserves: np.ndarray
    fund_closing: np.ndarray
    fund_unmet_empty: np.ndarray


def simulate(central: Flows, exposure: Exposure, rules: FundRules, u: Uncertainty, settings: SimulationSettings,
             draws: int | None = None) -> Simulated:
    """Run ``draws`` futures (default ``simulation.draws``) in chunks of ``chunk_cells`` draws x
    libraries (so a chunk's memory is the same whatever the number of libraries); each
    chunk's random numbers come from its own child of ``SeedSequence(seed)``, so the results do
    not depend on the machine or on the other chunks."""
    total = settings.draws if draws is None else draws
    step = max(1, settings.chunk_cells // max(1, len(central.libraries)))
    starts = list(range(0, total, step))
    children = np.random.SeedSequence(settings.seed).spawn(len(starts))
    n_lib, n_year = central.ahead.shape
    free = np.moveaxis(np.empty((n_year, total, n_lib), np.float32), 0, -1)  # laid out years first, as roll's own
    closing, unmet = np.empty((total, n_year)), np.empty((total, n_year))

    def chunk(start: int, child: np.random.SeedSequence) -> None:
        size = min(step, total - start)
        flows = draw_flows(np.random.default_rng(child), size, central, exposure, u, rules.pays_building_failures)
        rolled = roll(flows, rules, size, dtype=np.float32)
        rows = slice(start, start + size)  # written in place by the chunk's own thread: no concatenation after
        free[rows], closing[rows], unmet[rows] = (rolled.free_reserves, rolled.ledger["closing"],
                                                  rolled.ledger["unmet_fund_empty"])

    # Chunks are independent (each its own seed), so they run side by side on the machine's cores
    # (numpy frees the interpreter lock in its array loops); the results do not depend on how many.
    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, len(starts)))) as pool:
        list(pool.map(chunk, starts, children))
    return Simulated(central.libraries, central.years, free, closing, unmet)


# ---------------------------------------------------------------------------------------------
# What the futures say


def exhausted_by(free: np.ndarray) -> np.ndarray:
    """True from the first forecast year free reserves fall below nil, in each draw (never falls)."""
    below = np.nan_to_num(free, nan=0.0) < 0
    return np.maximum.accumulate(below, axis=-1)


def library_risk(sim: Simulated) -> pd.DataFrame:
    """``library_id, year, probability_run_out, free_reserves_p5 .. p95`` for forecast years."""
    has = ~np.isnan(sim.free_reserves[0])
    lib, yr = np.nonzero(has)
    probability = exhausted_by(sim.free_reserves).mean(axis=0)
    frame = pd.DataFrame({"library_id": sim.libraries[lib], "year": sim.years[yr],
                          "probability_run_out": probability[lib, yr]})
    quantiles = np.quantile(sim.free_reserves[:, lib, yr], np.asarray(PERCENTILES) / 100.0, axis=0)
    for p, values in zip(PERCENTILES, quantiles):
        frame[f"free_reserves_p{p}"] = values.astype(float)
    return frame


def portfolio_risk(sim: Simulated) -> pd.DataFrame:
    """Per forecast year: libraries run out (mean, 10th and 90th percentile), combined free
    reserves and the fund's balance (percentiles), and the probability the fund is exhausted by then."""
    ahead = ~np.isnan(sim.free_reserves[0]).all(axis=0)
    run_out = exhausted_by(sim.free_reserves).sum(axis=1)[:, ahead].astype(float)
    combined = np.nansum(sim.free_reserves, axis=1)[:, ahead]
    closing = sim.fund_closing[:, ahead]
    dry = np.maximum.accumulate((np.nan_to_num(closing, nan=1.0) <= 0.005)
                                | (np.nan_to_num(sim.fund_unmet_empty[:, ahead]) > 0.005), axis=1)
    frame = pd.DataFrame({"year": sim.years[ahead], "libraries_run_out_mean": run_out.mean(axis=0),
                          "libraries_run_out_p10": np.quantile(run_out, 0.1, axis=0),
                          "libraries_run_out_p90": np.quantile(run_out, 0.9, axis=0)})
    for p, values in zip(PERCENTILES, np.quantile(combined, np.asarray(PERCENTILES) / 100.0, axis=0)):
        frame[f"combined_free_reserves_p{p}"] = values
    for p, values in zip((10, 50, 90), np.quantile(np.nan_to_num(closing), (0.1, 0.5, 0.9), axis=0)):
        frame[f"fund_balance_p{p}"] = values
    frame["probability_fund_exhausted"] = dry.mean(axis=0)
    return frame
