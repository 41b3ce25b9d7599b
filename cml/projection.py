"""The reserves-and-deficit projection: stage 3 of the pipeline.

From each library's last year of actuals to the horizon, year by year: income and expenditure by
line, the council grant from the schedule, surplus or deficit, closing and free reserves, months
of cover and a RAG status. Everything is computed on whole frames (all libraries and years at
once); the only loops are over scenarios (here) and over years where a year depends on the one
before (the contingency fund, lease extensions), each still vectorised across libraries.

How each line is forecast is data (``lines.csv`` column ``forecast``):

* ``schedule`` - the council taper grant from :mod:`cml.schedule`;
* ``one_off`` - only what ``one_off_grants.csv`` names for a forecast year (nothing otherwise);
* ``trend`` - the library's own latest normal year (or the average of its latest ``base_years``
  normal full years, each restated in the last actual year's prices), grown from the last actual
  year by ``growth.costs`` (times any cost drift the pooled cost model finds) or ``growth.income``. Years named in ``forecast.abnormal_years`` (the
  Covid years) are never a base; a year a library did not report the line counts as nil;
* ``fitted`` - as ``trend``, but grown at the library's own growth from the pooled model of
  self-generated income (:mod:`cml.forecasting`) instead of ``growth.income``;
* ``ratio`` - a fixed share of another line (café cost of sales moves with café sales), the share
  taken from the library's own base years;
* ``interest`` - a rate on each year's opening cash (:mod:`cml.fund`, which rolls balances forward).

In forecast years restricted funds, designated funds and fixed assets stay at their last actual
value, so each year's surplus or deficit moves free reserves pound for pound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cml.adjustments import (
    add_shocks,
    apply_closure,
    apply_income_cuts,
    apply_leases,
    apply_levers,
    forecast_rows,
    lease_path,
    lever_libraries,
    security_factor,
    transfer_to_council,
)
from cml.checks import assert_reconciles
from cml.fund import DISCRETIONARY, Flows, FundRules, central_flows, library_year_array, roll_forward
from cml.forecasting import Fits, fit_models
from cml.fy import fy_label, library_years, parse_fy, period_ends, year_ranges
from cml.inputs import BUILDING_FAILURE, CONTINGENCY_GRANT, FUND_TOP_UP, OTHER_GRANTS, Assumptions, Inputs
from cml.peers import peer_table
from cml.scenarios import BASELINE, Recommendation, Scenario, StepRun
from cml.simulation import (
    Exposure,
    Simulated,
    SimulationSettings,
    Uncertainty,
    library_risk,
    portfolio_risk,
    draw_flows,
    simulate,
)
from cml.reserves_policy import latest_figures, reserves_requirement, score_risks, simulated_shortfall
from cml.sensitivity import portfolio_sensitivity, run_out_and_horizon, sensitivity_table
from cml.targets import EXTRA_INCOME, SAVING, lowest_headroom, solve
from cml.schedule import grant_schedule, last_grant_year, one_off_grants

if TYPE_CHECKING:
    from cml.backtest import Backtest
    from cml.review import Review

RAG_ORDER = ("Red", "Amber", "Green")
TRENDS = ("trend", "fitted")  # forecast methods that grow a base year
COUNCIL_COMPONENTS = ("council_grant", "fund_payments", "running_costs", "fabric_repairs", "lease_fees",
                      "interim_provision")
EARMARKED = ("fund_payments",)  # paid from money the council already holds in the contingency fund


@dataclass(frozen=True)
class Forecast:
    """Every figure cml reports, as plain frames (columns in ARCHITECTURE.md)."""

    projection: pd.DataFrame
    lines: pd.DataFrame
    summary: pd.DataFrame
    portfolio: pd.DataFrame
    libraries: pd.DataFrame
    trustee_projections: pd.DataFrame
    horizon: int
    grant_schedule: pd.DataFrame
    scenarios: pd.DataFrame
    council: pd.DataFrame
    claims: pd.DataFrame
    fund: pd.DataFrame
    leases: pd.DataFrame
    one_off_grants: pd.DataFrame
    base_years: pd.DataFrame
    grant_base_years: pd.DataFrame
    line_ratios: pd.DataFrame
    lease_extensions: pd.DataFrame
    assumptions: Assumptions
    settings: dict[str, dict] = field(default_factory=dict)
    checks: tuple = ()
    risk: pd.DataFrame = field(default_factory=pd.DataFrame)  # per scenario, library, year (cml.simulation)
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)  # per library: fundraising and saving targets (cml.targets)
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)  # per step, side, library (cml.sensitivity)
    portfolio_sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)  # per step and side: all libraries
    recommendation: Recommendation | None = None  # the option the report recommends (inputs/recommendation.toml)
    review: Review | None = None  # against an earlier pack, with --previous (cml.review)
    reserves_risks: pd.DataFrame = field(default_factory=pd.DataFrame)  # per library and risk (cml.reserves_policy)
    reserves_requirement: pd.DataFrame = field(default_factory=pd.DataFrame)  # per library: risk-based requirement
    peers: pd.DataFrame = field(default_factory=pd.DataFrame)  # per library: beside the portfolio's quartiles (cml.peers)
    portfolio_risk: pd.DataFrame = field(default_factory=pd.DataFrame)  # per scenario, year
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)  # per library: fitted growth (baseline's cut-off)
    fit_records: tuple = ()  # per model: which was used, converged, warnings, fallback (run.json)
    backtest: Backtest | None = None  # the status quo re-run from earlier cut-offs (cml.backtest), when asked for


# ---------------------------------------------------------------------------------------------
# Which years are actual


def last_actual_years(inputs: Inputs) -> pd.Series:
    """Each library's last year of actuals: its latest reserves year, capped at ``actuals_to``."""
    latest = inputs.reserves.groupby("library_id")["year"].max()
    cutoff = inputs.assumptions.actuals_to
    return latest if cutoff is None else latest.clip(upper=cutoff)


def first_years(libraries: pd.DataFrame) -> pd.Series:
    """The financial year each library transferred in (its first, usually part, year)."""
    return library_years(libraries, "transfer_date")


def year_grid(inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """One row per library and financial year from transfer to the horizon, flagged actual or forecast."""
    first = first_years(inputs.libraries)
    horizon = inputs.assumptions.horizon
    starts = pd.DataFrame({"library_id": first.index, "start": first.to_numpy()})
    years = pd.DataFrame({"year": np.arange(int(first.min()), horizon + 1)})
    grid = starts.merge(years, how="cross").query("year >= start")[["library_id", "year"]].reset_index(drop=True)
    grid["actual_or_forecast"] = np.where(grid["year"] <= grid["library_id"].map(last_actual), "actual", "forecast")
    return grid


# ---------------------------------------------------------------------------------------------
# Lines: actuals, then each forecast method


def actual_lines(inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """The accounts up to each library's last actual year: ``library_id, year, line, amount``."""
    accounts = inputs.accounts
    keep = accounts["year"] <= accounts["library_id"].map(last_actual)
    return accounts.loc[keep, ["library_id", "year", "line", "amount"]]


def base_years(inputs: Inputs, last_actual: pd.Series, count: int | None = None) -> pd.DataFrame:
    """The years each library's forecast starts from (``library_id, year``): its latest ``count``
    (default ``forecast.base_years``) normal full years up to its last actual year.

    A year in ``forecast.abnormal_years`` is never a base, nor the part-year of the transfer while a
    full year exists; a library with no normal full year at all falls back to its latest full year.
    """
    assumptions = inputs.assumptions
    years = inputs.reserves[["library_id", "year"]]
    years = years[years["year"] <= years["library_id"].map(last_actual)]
    transfer = years["library_id"].map(first_years(inputs.libraries))
    has_full = (years["year"] > transfer).groupby(years["library_id"]).transform("any")
    years = years[(years["year"] > transfer) | ~has_full].assign(
        abnormal=lambda y: y["year"].isin(assumptions.abnormal_years))
    has_normal = (~years["abnormal"]).groupby(years["library_id"]).transform("any")
    years = years[~years["abnormal"] | ~has_normal].sort_values(["library_id", "year"])
    chosen = years.groupby("library_id").tail(count or assumptions.base_years)
    return chosen[["library_id", "year"]].reset_index(drop=True)


def _in_base(actuals: pd.DataFrame, base: pd.DataFrame, lines: pd.Series) -> pd.DataFrame:
    """Every base-year amount of ``lines``, with a row of nil for a line a library did not report."""
    in_window = actuals.merge(base, on=["library_id", "year"])
    in_window = in_window[in_window["line"].isin(lines)]
    reported = in_window[["library_id", "line"]].drop_duplicates()
    full = base.merge(reported, on="library_id")
    return full.merge(in_window, on=["library_id", "year", "line"], how="left").fillna({"amount": 0.0})


def line_base_years(inputs: Inputs) -> pd.Series:
    """How many base years each trend line averages: its ``base_years`` in lines.csv (lumpy lines
    such as grants from other funders) or else ``forecast.base_years``."""
    trend = inputs.lines[inputs.lines["forecast"].isin(TRENDS)].set_index("line")
    own = pd.to_numeric(trend["base_years"], errors="coerce") if "base_years" in trend else pd.Series(np.nan, trend.index)
    return own.fillna(inputs.assumptions.base_years).astype(int)


def log_change(rows: pd.DataFrame, inputs: Inputs, fits: Fits, from_years, to_years) -> np.ndarray:
    """Each row's change in log terms from ``from_years`` to ``to_years``: a ``fitted`` line at the
    library's fitted growth; other income at ``growth.income``; costs by the cost prices of those
    years (``growth.costs``, or the year's rate in ``growth.costs_by_year``) plus the fitted cost
    drift (nil unless the history shows one clearly: :func:`cml.forecasting.cost_drift`)."""
    meta = inputs.lines.set_index("line")
    a = inputs.assumptions
    span = np.asarray(to_years) - np.asarray(from_years)
    fitted = rows["library_id"].map(fits.self_generated.growth["growth"]).fillna(np.log1p(a.income_growth)) * span
    cost = (a.log_cost_change(from_years, to_years)
            + rows["library_id"].map(fits.costs.growth["growth"]).fillna(0.0).to_numpy() * span)
    return np.select([rows["line"].map(meta["forecast"]) == "fitted", rows["line"].map(meta["side"]) == "expenditure"],
                     [fitted, cost], np.log1p(a.income_growth) * span)


def trend_base(actuals: pd.DataFrame, inputs: Inputs, last_actual: pd.Series, years_for: dict[int, pd.DataFrame],
               fits: Fits) -> pd.DataFrame:
    """Each trend or fitted line's starting level, in the prices of the library's last actual year.

    ``years_for`` gives the base years for each count a line may average. Each base year's amount
    is first grown to the last actual year at the line's own growth, so an average of several
    years is not a step down from the latest accounts.
    """
    counts = line_base_years(inputs)
    rows = pd.concat([_in_base(actuals, years_for[n], lines.index.to_series()) for n, lines in counts.groupby(counts)],
                     ignore_index=True)
    last = rows["library_id"].map(last_actual)
    rows["base"] = rows["amount"] * np.exp(log_change(rows, inputs, fits, rows["year"], last))
    out = rows.groupby(["library_id", "line"], as_index=False)["base"].mean()
    out["base_year"] = out["library_id"].map(last_actual)
    return out[["library_id", "line", "base", "base_year"]]


def forecast_trend_lines(base: pd.DataFrame, grid: pd.DataFrame, inputs: Inputs, fits: Fits) -> pd.DataFrame:
    """Grow each base from the last actual year at its line's growth (:func:`log_change`)."""
    forecast_years = grid[grid["actual_or_forecast"] == "forecast"][["library_id", "year"]]
    rows = forecast_years.merge(base, on="library_id")
    rows["amount"] = rows["base"] * np.exp(log_change(rows, inputs, fits, rows["base_year"], rows["year"]))
    return rows[["library_id", "year", "line", "amount"]]


def line_ratios(actuals: pd.DataFrame, inputs: Inputs, base: pd.DataFrame) -> pd.DataFrame:
    """Each ``ratio`` line as a share of the line it moves with, over the library's base years
    (``library_id, line, ratio_of, ratio``); nil where the driver earned nothing then."""
    meta = inputs.lines[inputs.lines["forecast"] == "ratio"].set_index("line")["ratio_of"]
    if meta.empty:
        return pd.DataFrame(columns=["library_id", "line", "ratio_of", "ratio"])
    amounts = _in_base(actuals, base, pd.concat([meta.index.to_series(), meta])).groupby(
        ["library_id", "line"])["amount"].sum()
    pairs = base[["library_id"]].drop_duplicates().merge(meta.rename("ratio_of").reset_index(), how="cross")
    cost = amounts.reindex(pd.MultiIndex.from_frame(pairs[["library_id", "line"]])).fillna(0.0).to_numpy()
    driver = amounts.reindex(pd.MultiIndex.from_frame(pairs[["library_id", "ratio_of"]])).fillna(0.0).to_numpy()
    pairs["ratio"] = np.divide(cost, driver, out=np.zeros_like(cost), where=driver > 0)
    return pairs


def ratio_lines(lines: pd.DataFrame, ratios: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Forecast ``ratio`` lines from their drivers as the scenario left them (after levers and closures)."""
    drivers = lines[forecast_rows(lines, grid)].rename(columns={"line": "ratio_of"})
    rows = drivers.merge(ratios, on=["library_id", "ratio_of"])
    rows["amount"] = rows["amount"] * rows["ratio"]
    return pd.concat([lines, rows[["library_id", "year", "line", "amount"]]], ignore_index=True)


def forecast_grant_lines(schedule: pd.DataFrame, grid: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Council taper grant and programme one-off grants in forecast years."""
    forecast_years = grid[grid["actual_or_forecast"] == "forecast"][["library_id", "year"]]
    grant_line = inputs.lines.loc[inputs.lines["forecast"] == "schedule", "line"].iloc[0]  # exactly one: checked
    taper = schedule.assign(line=grant_line).rename(columns={"council_grant": "amount"})
    one_offs = one_off_grants(inputs.libraries, inputs.one_off_grants)
    grants = pd.concat([taper, one_offs], ignore_index=True)
    return forecast_years.merge(grants, on=["library_id", "year"])[["library_id", "year", "line", "amount"]]


@dataclass(frozen=True)
class Base:
    """Where every forecast starts: the base years (the default, and those of grants from other
    funders, which the funders' rule compares with), each trend line's level and the ratio lines' shares."""

    years: pd.DataFrame
    grant_years: pd.DataFrame
    trend: pd.DataFrame
    ratios: pd.DataFrame


def forecast_base(inputs: Inputs, last_actual: pd.Series, fits: Fits) -> Base:
    """The base of every trend and ratio line (what the fitted forecast would replace)."""
    actuals = actual_lines(inputs, last_actual)
    counts = line_base_years(inputs)
    years_for = {n: base_years(inputs, last_actual, n) for n in {*counts, inputs.assumptions.base_years}}
    default = years_for[inputs.assumptions.base_years]
    grants = years_for[int(counts.get(OTHER_GRANTS, inputs.assumptions.base_years))]
    return Base(default, grants, trend_base(actuals, inputs, last_actual, years_for, fits),
                line_ratios(actuals, inputs, default))


def all_lines(inputs: Inputs, schedule: pd.DataFrame, grid: pd.DataFrame, last_actual: pd.Series,
              base: Base, fits: Fits) -> pd.DataFrame:
    """Actual amounts by line, trend lines forecast from the base, and the council's grants."""
    lines = pd.concat(
        [actual_lines(inputs, last_actual), forecast_trend_lines(base.trend, grid, inputs, fits),
         forecast_grant_lines(schedule, grid, inputs)],
        ignore_index=True,
    )
    return attach_line_meta(lines, inputs)


def attach_line_meta(lines: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """One row per library, year and line (amounts summed), with the line's side and group."""
    lines = lines.groupby(["library_id", "year", "line"], as_index=False)["amount"].sum()
    meta = inputs.lines.set_index("line")[["side", "group"]]
    return lines.join(meta, on="line")


# ---------------------------------------------------------------------------------------------
# Yearly totals and reserves


def yearly_totals(lines: pd.DataFrame, grid: pd.DataFrame, one_off_costs: set[str]) -> pd.DataFrame:
    """Grant, self-generated income, other income, income, expenditure and surplus per library-year.

    ``income`` is the library's own position: discretionary fund top-ups are apart, in
    ``fund_top_ups``. ``recurring_spending`` leaves out one-off costs (``one_off_costs``: lease fees,
    building failures, planned one-offs), so a one-off repair does not move months of cover or the
    reserves target.
    """
    income = lines[lines["side"] == "income"]
    spending = lines[lines["side"] == "expenditure"]
    own_income = income[income["group"] != FUND_TOP_UP]
    heads = {
        "council_grant": income[income["group"] == "council_grant"],
        "self_generated_income": income[income["group"] == "self_generated"],
        "other_income": own_income[~own_income["group"].isin(["council_grant", "self_generated"])],
        "fund_support": income[income["line"] == CONTINGENCY_GRANT],
        "income": own_income,
        "expenditure": spending,
        "recurring_spending": spending[~spending["line"].isin(one_off_costs)],
        "fund_top_ups": income[income["group"] == FUND_TOP_UP],
    }
    totals = grid.copy()
    for head, rows in heads.items():
        summed = rows.groupby(["library_id", "year"])["amount"].sum().rename(head)
        totals = totals.join(summed, on=["library_id", "year"])
    totals[list(heads)] = totals[list(heads)].fillna(0.0)
    totals["surplus"] = totals["income"] - totals["expenditure"]
    return totals


def reserves_at_cut(inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """Each library's funds at the end of its last actual year (indexed by library): free reserves
    (CC19: unrestricted less designated funds and fixed assets) and the unrestricted cash beyond
    them (designated funds), on which interest is also earned. Interest on restricted funds
    belongs to those funds (Charities SORP), so they earn none for free reserves here."""
    reserves = inputs.reserves[inputs.reserves["year"] == inputs.reserves["library_id"].map(last_actual)]
    return pd.DataFrame({
        "free": (reserves["unrestricted"] - reserves["designated"] - reserves["fixed_assets"]).to_numpy(),
        "cash_less_free": reserves["designated"].to_numpy(),
    }, index=reserves["library_id"].to_numpy())


def reserves_path(totals: pd.DataFrame, inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """Opening, closing and free reserves: actuals from reserves.csv, then opening + surplus.

    Closing total funds = unrestricted + restricted. Free reserves (CC19) = unrestricted less
    designated funds less fixed assets; in forecast years the tied-up funds stay at their last
    actual value. ``free_reserves_supported`` adds the discretionary fund top-ups paid to date.
    """
    reserves = inputs.reserves.assign(
        closing=lambda r: r["unrestricted"] + r["restricted"],
        tied=lambda r: r["restricted"] + r["designated"] + r["fixed_assets"],
    )
    at_cut = reserves[reserves["year"] == reserves["library_id"].map(last_actual)].set_index("library_id")
    out = totals.merge(reserves[["library_id", "year", "closing", "tied"]], on=["library_id", "year"], how="left")
    forecast = out["actual_or_forecast"] == "forecast"
    flows = out["surplus"].where(forecast, 0.0).groupby(out["library_id"]).cumsum()
    out["closing_reserves"] = np.where(forecast, out["library_id"].map(at_cut["closing"]) + flows, out["closing"])
    tied = np.where(forecast, out["library_id"].map(at_cut["tied"]), out["tied"])
    out["free_reserves"] = out["closing_reserves"] - tied
    out["free_reserves_supported"] = out["free_reserves"] + out["fund_top_ups"].groupby(out["library_id"]).cumsum()
    previous = out.groupby("library_id")["closing_reserves"].shift()
    out["opening_reserves"] = previous.fillna(out["closing_reserves"] - out["surplus"])
    return out.drop(columns=["closing", "tied"])


def next_run_out(frame: pd.DataFrame, column: str) -> pd.Series:
    """For each library-year, the first later year in which ``column`` is below nil (NaN: none).

    >>> f = pd.DataFrame({"library_id": ["a"] * 4, "year": [1, 2, 3, 4], "free": [5.0, -1.0, 2.0, -3.0]})
    >>> next_run_out(f, "free").tolist()
    [2.0, 4.0, 4.0, nan]
    """
    ordered = frame.sort_values(["library_id", "year"])
    dry = ordered["year"].where(ordered[column] < 0).astype(float)
    later = dry.groupby(ordered["library_id"]).shift(-1)
    return later.groupby(ordered["library_id"]).bfill().reindex(frame.index)


def forecast_or_latest(frame: pd.DataFrame) -> pd.Series:
    """True for forecast years and each library's latest actual year (all rows when the frame
    does not say which are actual)."""
    if "actual_or_forecast" not in frame:
        return pd.Series(True, index=frame.index)
    actual = frame["actual_or_forecast"] == "actual"
    latest = frame["year"] == frame["year"].where(actual).groupby(frame["library_id"]).transform("max")
    return ~actual | latest


def rag_status(free: pd.Series, cover: pd.Series, amber_line: pd.Series, runs_out_within: pd.Series,
               red_below: float) -> np.ndarray:
    """Red: free reserves gone or under ``red_below`` months. Amber: under the library's amber line
    (the higher of the Amber threshold and its own reserves policy), or running out within the
    look-ahead. Green otherwise.

    >>> rag_status(pd.Series([-1.0, 10.0, 10.0, 10.0]), pd.Series([0.0, 2.0, 12.0, 12.0]),
    ...            pd.Series([6.0, 6.0, 6.0, 6.0]), pd.Series([False, False, True, False]), 3.0).tolist()
    ['Red', 'Red', 'Amber', 'Green']
    """
    cover = cover.fillna(np.inf)
    return np.select([(free < 0) | (cover < red_below), (cover < amber_line) | runs_out_within],
                     ["Red", "Amber"], "Green")


def cover_and_rag(frame: pd.DataFrame, libraries: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Months of cover, the reserves-policy target in pounds, and the RAG status, on the library's
    own position (before discretionary top-ups; ``rag_supported`` beside it).

    Cover and the target use recurring spending, so a one-off cost does not move them. A library
    whose free reserves run out within ``rag.not_green_if_runs_out_within_years`` is not Green: in
    forecast years and the latest actual year ("now"), not in earlier actual years, which are
    rated on what they held (hindsight would rewrite them). Near the horizon the look-ahead can
    see only to the horizon.
    """
    rules = inputs.assumptions
    monthly = frame["recurring_spending"] / 12.0
    target_months = frame["library_id"].map(libraries.set_index("library_id")["reserves_target_months"])
    frame["reserves_target"] = target_months * monthly
    frame["months_of_cover"] = (frame["free_reserves"] / monthly.where(monthly > 0)).round(10)
    amber_line = np.maximum(rules.amber_below_months, target_months)
    looks_ahead = forecast_or_latest(frame)
    for suffix, column in (("", "free_reserves"), ("_supported", "free_reserves_supported")):
        cover = (frame[column] / monthly.where(monthly > 0)).round(10)  # a top-up to exactly the floor is not under it
        within = looks_ahead & ((next_run_out(frame, column) - frame["year"]) <= rules.not_green_within_years)
        frame[f"rag{suffix}"] = rag_status(frame[column], cover, amber_line, within, rules.red_below_months)
    return frame


# ---------------------------------------------------------------------------------------------
# Summaries


def library_facts(inputs: Inputs, schedule: pd.DataFrame, last_actual: pd.Series, leases: pd.DataFrame) -> pd.DataFrame:
    """Library records with the lease as it stands at the end of actuals (recorded extensions
    included: ``lease_end``, ``lease_years_remaining``), the day the latest accounts were made up
    to (``accounts_made_up_to``), and the last grant year."""
    libraries = inputs.libraries.copy()
    now = leases[leases["year"] == leases["library_id"].map(last_actual)].set_index("library_id")
    libraries["lease_end"] = libraries["library_id"].map(now["lease_end"])
    libraries["lease_years_remaining"] = libraries["library_id"].map(now["lease_years_remaining"]).round(1)
    libraries["last_actual_year"] = libraries["library_id"].map(last_actual).map(fy_label)
    libraries["accounts_made_up_to"] = period_ends(libraries["library_id"].map(last_actual), libraries["year_end"])
    last_grant = libraries["library_id"].map(last_grant_year(schedule))
    no_grant = libraries["library_id"].map(first_years(libraries))  # running costs of 0: "ended" in the transfer year
    libraries["last_grant_year"] = last_grant.fillna(no_grant).astype(int).map(fy_label)
    return libraries


def comparison_years(projection: pd.DataFrame) -> pd.DataFrame:
    """The years every scenario's costs are counted over: the baseline's forecast years, library
    by library (``library_id, year``).

    A re-run of an earlier review forecasts from an earlier year; counting its costs from there
    would add years that the other scenarios take from the accounts, and the totals would not
    compare.
    """
    baseline = projection[(projection["scenario"] == BASELINE) & (projection["actual_or_forecast"] == "forecast")]
    return baseline[["library_id", "year"]]


def first_below_nil(projection: pd.DataFrame, column: str) -> pd.Series:
    """Per scenario and library, the financial year ``column`` first falls below nil (absent: never)."""
    return projection[projection[column] < 0].groupby(["scenario", "library_id"])["financial_year"].first()


def summarise(projection: pd.DataFrame, libraries: pd.DataFrame, council: pd.DataFrame, gap_years: int) -> pd.DataFrame:
    """One row per scenario and library: the headline figures of a briefing.

    ``run_out_year`` is read from the library's own position; ``run_out_year_supported`` after any
    discretionary fund top-ups. ``annual_gap`` is recurring spending less the library's own income
    (contingency fund payments left out), averaged over the first ``gap_years`` forecast years
    without the taper grant: one-off costs such as lease fees are not part of the gap to close.
    """
    keys = ["scenario", "library_id"]
    by = projection.groupby(keys, sort=False)
    last_grant = projection["library_id"].map(libraries.set_index("library_id")["last_grant_year"])
    now = projection[projection["actual_or_forecast"] == "actual"].groupby(keys).tail(1).set_index(keys)
    at_grant_end = projection[projection["financial_year"] == last_grant].set_index(keys)
    horizon = by.tail(1).set_index(keys)
    after_grant = projection[(projection["actual_or_forecast"] == "forecast") & (projection["council_grant"] == 0)]
    first_after = after_grant.groupby(keys).head(gap_years)
    own_income = first_after["income"] - first_after["fund_support"]
    gap_groups = [first_after[k] for k in keys]
    gap = (first_after["recurring_spending"] - own_income).groupby(gap_groups).mean()
    gap_labels = first_after["financial_year"].groupby(gap_groups).agg(lambda labels: year_ranges(list(labels)))
    summary = horizon[["name"]].copy()
    summary["rag_now"] = now["rag"]
    summary["months_of_cover_now"] = now["months_of_cover"]
    summary["last_grant_year"] = horizon.index.get_level_values("library_id").map(
        libraries.set_index("library_id")["last_grant_year"])
    summary["months_of_cover_at_grant_end"] = at_grant_end["months_of_cover"]
    for column, reserves in (("run_out_year", "free_reserves"), ("run_out_year_supported", "free_reserves_supported")):
        run_out = first_below_nil(projection, reserves).reindex(summary.index)
        summary[column] = run_out.astype(object).where(run_out.notna(), None)
    summary["horizon_closing_reserves"] = horizon["closing_reserves"]
    summary["horizon_free_reserves"] = horizon["free_reserves"]
    summary["horizon_free_reserves_supported"] = horizon["free_reserves_supported"]
    summary["annual_gap"] = gap.reindex(summary.index)
    summary["annual_gap_years"] = gap_labels.reindex(summary.index)
    council_forecast = council.merge(comparison_years(projection), on=["library_id", "year"])
    summary["council_cost"] = council_forecast.groupby(keys)["amount"].sum().reindex(summary.index, fill_value=0.0)
    return summary.reset_index()


def portfolio_by_year(projection: pd.DataFrame, council: pd.DataFrame, fund: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and year: libraries by RAG, money summed over libraries, council cost, fund.

    ``deficit`` is the sum of the deficits of libraries in deficit (a positive number), not
    the net of surpluses and deficits: it is what the libraries must find from reserves. Likewise
    ``free_reserves_held`` adds up the libraries with free reserves and ``free_reserves_short`` the
    shortfall of those below nil, so a committee never reads one library's shortfall as netted off
    against another's reserves (``free_reserves`` is the net).
    ``council_cost_*`` columns are the council's spending by component and in total;
    ``council_new_money`` leaves out what the contingency fund pays from money already earmarked.
    ``fund_*`` columns come from the contingency fund's ledger.
    """
    keys = ["scenario", "year", "financial_year"]
    counts = pd.crosstab([projection[k] for k in keys], projection["rag"]).reindex(columns=list(RAG_ORDER), fill_value=0)
    counts.columns = [f"libraries_{c.lower()}" for c in counts.columns]
    money = projection.assign(deficit=(-projection["surplus"]).clip(lower=0),
                              free_reserves_held=projection["free_reserves"].clip(lower=0),
                              free_reserves_short=(-projection["free_reserves"]).clip(lower=0)).groupby(keys)[
        ["council_grant", "income", "expenditure", "deficit", "closing_reserves", "free_reserves", "free_reserves_held",
         "free_reserves_short", "fund_top_ups", "free_reserves_supported"]
    ].sum()
    cost = council.pivot_table(index=["scenario", "year", "financial_year"], columns="component", values="amount",
                               aggfunc="sum", fill_value=0.0)
    cost = cost.reindex(columns=list(COUNCIL_COMPONENTS), fill_value=0.0).add_prefix("council_cost_")
    cost["council_cost_total"] = cost.sum(axis=1)
    cost["council_new_money"] = cost["council_cost_total"] - cost[[f"council_cost_{c}" for c in EARMARKED]].sum(axis=1)
    ledger = fund.set_index(keys)[["closing", "unmet_over_caps", "unmet_fund_empty"]].add_prefix("fund_")
    portfolio = counts.join(money).join(cost).join(ledger)
    portfolio[cost.columns] = portfolio[cost.columns].fillna(0.0)
    return portfolio.reset_index()


def real_terms_factor(years: pd.Series, first_year: int, inflation: float) -> pd.Series:
    """What a pound of ``years`` is worth in the prices of ``first_year``.

    >>> real_terms_factor(pd.Series([2024, 2025, 2026]), 2024, 0.02).round(4).tolist()
    [1.0, 0.9804, 0.9612]
    """
    return (1.0 + inflation) ** -(years - first_year).astype(float)


def service_years(summary: pd.DataFrame, column: str, first_year: int, horizon: int) -> pd.Series:
    """Years of service each library gives from ``first_year`` to the horizon before its reserves
    (``column``: a run-out year label or None) run out."""
    run_out = summary[column].map(lambda label: parse_fy(label) if label else horizon + 1)
    return (run_out.clip(lower=first_year) - first_year).astype(int)


def option_comparison(forecast: Forecast) -> pd.DataFrame:
    """One row per scenario, the figures an officer needs to write an options appraisal.

    Libraries at risk in the scenario's first forecast year and at the horizon; when reserves run
    out; when the contingency fund is exhausted (``None``: not within the horizon); the council's
    cost over the :func:`comparison_years` (``cost_years``) in cash and in real terms (prices of the
    first of those years), split into new council money and payments from the earmarked fund; and,
    against the baseline (the status quo), the extra cost and what it buys: libraries kept from
    running out by the horizon and years of service gained (after any fund top-ups, as the
    libraries would live them).
    """
    projection = forecast.projection
    forecast_rows = projection[projection["actual_or_forecast"] == "forecast"]
    window = comparison_years(projection)
    first_cost_year = int(window["year"].min())
    first_year = forecast_rows.groupby("scenario")["year"].min()
    first = forecast_rows[forecast_rows["year"] == forecast_rows["scenario"].map(first_year)]
    horizon = projection[projection["year"] == projection.groupby("scenario")["year"].transform("max")]
    costs = forecast.council.merge(window, on=["library_id", "year"])
    costs["real"] = costs["amount"] * real_terms_factor(costs["year"], first_cost_year,
                                                         forecast.assumptions.real_terms_inflation)
    by_component = costs.pivot_table(index="scenario", columns="component", values="amount", aggfunc="sum", fill_value=0.0)
    by_component = by_component.reindex(columns=list(COUNCIL_COMPONENTS), fill_value=0.0)
    earmarked = costs["component"].isin(EARMARKED)
    fund = forecast.fund[forecast.fund["year"] >= first_cost_year]
    dry = fund[(fund["closing"] <= 0.005) | (fund["unmet_fund_empty"] > 0.005)].groupby("scenario")["financial_year"].first()
    table = forecast.scenarios.set_index("scenario")[["description"]].copy()
    table["first_forecast_year"] = first_year.map(fy_label)
    table["at_risk_first_forecast_year"] = first[first["rag"] != "Green"].groupby("scenario").size()
    table["red_at_horizon"] = horizon[horizon["rag"] == "Red"].groupby("scenario").size()
    summary = forecast.summary.set_index("scenario")
    table["libraries_running_out"] = summary["run_out_year"].notna().groupby(level=0).sum()
    table["libraries_running_out_supported"] = summary["run_out_year_supported"].notna().groupby(level=0).sum()
    table["fund_exhausted_in"] = dry.reindex(table.index).astype(object).where(lambda d: d.notna(), None)
    table["cost_years"] = f"{fy_label(first_cost_year)} to {fy_label(int(window['year'].max()))}"
    forecast_fund = fund.groupby("scenario")[["payments", "unmet_over_caps", "unmet_fund_empty"]].sum()
    table["fund_paid_in_forecast"] = forecast_fund["payments"]
    table["fund_unmet_over_caps"] = forecast_fund["unmet_over_caps"]
    table["fund_unmet_fund_empty"] = forecast_fund["unmet_fund_empty"]
    table = table.join(by_component.add_prefix("council_cost_"))
    table["council_cost_total"] = costs.groupby("scenario")["amount"].sum()
    table["council_new_money"] = costs[~earmarked].groupby("scenario")["amount"].sum()
    table["council_earmarked_fund"] = costs[earmarked].groupby("scenario")["amount"].sum()
    table["council_cost_total_real"] = costs.groupby("scenario")["real"].sum()
    table["council_new_money_real"] = costs[~earmarked].groupby("scenario")["real"].sum()
    table["council_cost_per_year"] = table["council_cost_total"] / window["year"].nunique()
    table["horizon_free_reserves"] = horizon.groupby("scenario")["free_reserves"].sum()
    table["change_from_baseline"] = table["horizon_free_reserves"] - table.loc[BASELINE, "horizon_free_reserves"]
    money = table.columns[table.columns.str.startswith(("council_", "fund_paid", "fund_unmet"))]
    table[money] = table[money].fillna(0.0)
    for column in ("council_new_money", "council_new_money_real", "council_cost_total"):
        table[f"extra_{column}"] = table[column] - table.loc[BASELINE, column]
    supported = summary.reset_index()
    service = service_years(supported, "run_out_year_supported", first_cost_year, forecast.horizon)
    by_library = supported.assign(service=service.to_numpy()).pivot(index="library_id", columns="scenario", values="service")
    baseline_runs_out = supported[supported["scenario"] == BASELINE].set_index("library_id")["run_out_year_supported"].notna()
    runs_out = supported.set_index(["scenario", "library_id"])["run_out_year_supported"].notna().unstack("library_id")
    table["libraries_kept_from_running_out"] = (baseline_runs_out & ~runs_out).sum(axis=1).reindex(table.index)
    table["years_of_service_gained"] = by_library.sub(by_library[BASELINE], axis=0).sum().reindex(table.index)
    counts = ["at_risk_first_forecast_year", "red_at_horizon", "libraries_running_out", "libraries_running_out_supported",
              "libraries_kept_from_running_out", "years_of_service_gained"]
    table[counts] = table[counts].fillna(0).astype(int)
    return table.join(simulated_outcomes(forecast, table["libraries_running_out"])).reset_index()


def simulated_outcomes(forecast: Forecast, central_running_out: pd.Series) -> pd.DataFrame:
    """Per scenario, from the simulation at the horizon: libraries run out (average, 1 future in
    10 fewer, 1 in 10 more), the chance the contingency fund has run dry, and the council's
    exposure in 1 future in 10: the interim provision for the libraries run out beyond the
    central forecast's count (``council.interim_provision_*``, in the first forecast year's prices)."""
    risk = forecast.portfolio_risk
    if risk.empty:
        return pd.DataFrame(index=central_running_out.index)
    at_horizon = risk[risk["year"] == risk.groupby("scenario")["year"].transform("max")].set_index("scenario")
    a = forecast.assumptions
    beyond = (at_horizon["libraries_run_out_p90"] - central_running_out.reindex(at_horizon.index)).clip(lower=0)
    return pd.DataFrame({
        "simulated_running_out_mean": at_horizon["libraries_run_out_mean"],
        "simulated_running_out_p10": at_horizon["libraries_run_out_p10"],
        "simulated_running_out_p90": at_horizon["libraries_run_out_p90"],
        "probability_fund_exhausted_at_horizon": at_horizon["probability_fund_exhausted"],
        "interim_exposure_1_in_10": beyond * a.interim_provision_per_year * a.interim_provision_years,
    })


# ---------------------------------------------------------------------------------------------
# One scenario


@dataclass(frozen=True)
class ScenarioRun:
    """Everything one scenario produces, before scenarios are stacked into a :class:`Forecast`."""

    projection: pd.DataFrame
    lines: pd.DataFrame
    council: pd.DataFrame
    claims: pd.DataFrame
    fund: pd.DataFrame
    leases: pd.DataFrame
    libraries: pd.DataFrame
    schedule: pd.DataFrame
    base: Base
    flows: Flows  # before claims: what the simulation shocks and rolls forward again
    exposure: Exposure
    rules: FundRules
    fits: Fits


def scenario_libraries(libraries: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Library records as the scenario sees them: Option 2 makes every full-repairing lease
    internal-repairing; a reserves-policy lever replaces the chosen libraries' own policy."""
    libraries = libraries.copy()
    if scenario["council.takes_fabric_repairs"]:
        libraries["lease_type"] = libraries["lease_type"].replace("full_repairing", "internal_repairing")
    if scenario["levers.use_reserves_target"]:
        chosen = lever_libraries(scenario, libraries)
        libraries.loc[chosen, "reserves_target_months"] = scenario["levers.reserves_target_months"]
    return libraries


def council_costs(lines: pd.DataFrame, claims: pd.DataFrame, fund: pd.DataFrame, moved: list[pd.DataFrame],
                  grid: pd.DataFrame) -> pd.DataFrame:
    """What the council pays per library and year, by component.

    ``council_grant`` is the taper grant; ``fund_payments`` what the contingency fund paid (as the
    accounts show in actual years, as simulated after); the rest are costs taken back, fees and
    interim provision.
    """
    grant = lines[lines["group"] == "council_grant"].assign(component="council_grant")
    actual = grid[grid["actual_or_forecast"] == "actual"][["library_id", "year"]]
    opening = int(fund["year"].min()) if len(fund) else np.inf
    recorded = lines[(lines["line"] == CONTINGENCY_GRANT) & (lines["year"] >= opening)].merge(actual)
    paid = claims.rename(columns={"paid": "amount"})
    fund_paid = pd.concat([recorded, paid], ignore_index=True).assign(component="fund_payments")
    parts = [grant, fund_paid, *moved]
    columns = ["library_id", "year", "component", "amount"]
    council = pd.concat([p[columns] for p in parts if len(p)], ignore_index=True)
    return council.groupby(columns[:3], as_index=False)["amount"].sum()


def failed_years(projection: pd.DataFrame) -> pd.DataFrame:
    """Forecast library-years from the year a library's free reserves (after any fund top-ups)
    first fall below nil: ``library_id, year, years_since`` (0 in the run-out year)."""
    ahead = projection[projection["actual_or_forecast"] == "forecast"]
    first = ahead[ahead["free_reserves_supported"] < 0].groupby("library_id")["year"].min()
    failed = ahead[ahead["year"] >= ahead["library_id"].map(first)][["library_id", "year"]]
    return failed.assign(years_since=failed["year"] - failed["library_id"].map(first))


def interim_provision(projection: pd.DataFrame, per_year: float, years: int, assumptions: Assumptions) -> pd.DataFrame:
    """The council's cost of interim library provision (seed 000 para 4: "until a permanent
    solution has been agreed") for ``years`` years from the year a library runs out, at
    ``per_year`` in the first forecast year's prices, grown with costs."""
    failed = failed_years(projection)
    failed = failed[failed["years_since"] < years]
    first = projection.loc[projection["actual_or_forecast"] == "forecast", "year"].min()
    amount = float(per_year) * np.exp(assumptions.log_cost_change(np.full(len(failed), first), failed["year"]))
    return failed[["library_id", "year"]].assign(component="interim_provision", amount=amount)


def without_failed_libraries(council: pd.DataFrame, projection: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    """The council's costs less what it would no longer pay once a library has closed: after the
    year it runs out, only interim provision is counted (no grant, fees, routine fabric or running
    costs), and building failures (``failures``: ``library_id, year, amount``, whoever's lease
    carried them): the building is the council's again, and a failed roof or boiler must be made
    safe whether or not a library runs in it (counted as ``fabric_repairs``)."""
    failed = failed_years(projection)
    after = failed[failed["years_since"] > 0].set_index(["library_id", "year"]).index
    keys = pd.MultiIndex.from_frame(council[["library_id", "year"]])
    kept = council[~keys.isin(after) | (council["component"] == "interim_provision").to_numpy()]
    closed = failures[pd.MultiIndex.from_frame(failures[["library_id", "year"]]).isin(after)].assign(component="fabric_repairs")
    columns = ["library_id", "year", "component", "amount"]
    return pd.concat([kept, closed[columns]], ignore_index=True).groupby(columns[:3], as_index=False)["amount"].sum()


def fund_needs(lines: pd.DataFrame, grid: pd.DataFrame, income_cuts: pd.DataFrame) -> pd.DataFrame:
    """What may be claimed from the fund in forecast years (``library_id, year, kind, amount``):
    programme grants the council decided, building failures, council decisions that cut income."""
    ahead = lines[forecast_rows(lines, grid)]
    programme = ahead[ahead["line"] == CONTINGENCY_GRANT].assign(kind="programme")
    failures = ahead[ahead["line"] == BUILDING_FAILURE].assign(kind="building_failure")
    columns = ["library_id", "year", "kind", "amount"]
    return pd.concat([programme[columns], failures[columns], income_cuts[columns]], ignore_index=True)


def fit_for(inputs: Inputs) -> Fits:
    """The pooled models fitted to the accounts up to each library's last actual year (the
    forecasting stage: computed once per cut-off and :func:`fit_settings`, whatever the scenario)."""
    a = inputs.assumptions
    return fit_models(inputs.accounts, inputs.lines, last_actual_years(inputs), first_years(inputs.libraries),
                      a.abnormal_years, a.income_growth,
                      lambda years: a.log_cost_change(np.full_like(years, years.max()), years), a.growth_prior_sd,
                      a.cost_step_years)


def fit_settings(inputs: Inputs) -> tuple:
    """Everything :func:`fit_for` depends on: the cut-off and the assumptions the fits use. Two
    scenarios with equal settings share one fit; one that changes, say, ``growth.income`` gets its own."""
    a = inputs.assumptions
    return (tuple(last_actual_years(inputs).items()), a.abnormal_years, a.income_growth, a.cost_growth,
            a.cost_growth_by_year, a.growth_prior_sd, a.cost_step_years)


def project_scenario(inputs: Inputs, scenario: Scenario, fits: Fits) -> ScenarioRun:
    """Lines, adjustments, interest and the contingency fund, then reserves and RAG, for one
    scenario, from the models ``fits`` fitted to the same cut-off (:func:`fit_for`)."""
    inputs = replace(inputs, assumptions=scenario.assumptions)
    schedule = grant_schedule(inputs.libraries, inputs.taper, inputs.assumptions.grant_payment)
    last_actual = last_actual_years(inputs)
    libraries = scenario_libraries(inputs.libraries, scenario)
    grid = year_grid(inputs, last_actual)
    base = forecast_base(inputs, last_actual, fits)
    lines = all_lines(inputs, schedule, grid, last_actual, base, fits)
    one_off_costs = set(inputs.lines.loc[(inputs.lines["forecast"] == "one_off") & (inputs.lines["side"] == "expenditure"),
                                         "line"])
    lines = apply_levers(lines, grid, scenario, libraries, one_off_costs)
    lines = apply_closure(lines, grid, scenario)
    lines, income_cuts = apply_income_cuts(lines, grid, scenario)
    lines = ratio_lines(lines, base.ratios, grid)
    lines = add_shocks(lines, grid, scenario)
    leases = lease_path(libraries, inputs.lease_extensions, grid, scenario)
    leases["other_grants_factor"] = security_factor(leases, base.grant_years, scenario["funders.other_grants_lost_share"]
                                                    ).where(leases["year"] > leases["library_id"].map(last_actual))
    lines, lease_fees = apply_leases(lines, grid, scenario, leases)
    running_costs = set(inputs.lines.loc[inputs.lines["running_cost"] == "yes", "line"])
    failures = lines[forecast_rows(lines, grid) & (lines["line"] == BUILDING_FAILURE)]  # before any move to the council
    lines, taken_back = transfer_to_council(lines, grid, scenario, libraries, running_costs)
    lines = attach_line_meta(lines, inputs)
    interest_line = inputs.lines.loc[inputs.lines["forecast"] == "interest", "line"]
    programme = forecast_rows(lines, grid) & (lines["line"] == CONTINGENCY_GRANT)
    before_claims = yearly_totals(lines[~programme], grid, one_off_costs)
    at_cut = reserves_at_cut(inputs, last_actual)
    recorded = lines[(lines["line"] == CONTINGENCY_GRANT) & ~forecast_rows(lines, grid)].groupby("year")["amount"].sum()
    flows = central_flows(before_claims, fund_needs(lines, grid, income_cuts), recorded, at_cut["free"],
                          at_cut["cash_less_free"], sorted(grid["year"].unique()))
    rules = FundRules.of(scenario, inputs.assumptions.interest_rate)
    rolled = roll_forward(flows, rules)
    exposure = shock_exposure(lines[~programme], grid, inputs, flows, libraries, scenario, last_actual, fits)
    claims = rolled.claims
    paid = claims.assign(line=np.where(claims["kind"] == DISCRETIONARY, FUND_TOP_UP, CONTINGENCY_GRANT)).groupby(
        ["library_id", "year", "line"], as_index=False)["paid"].sum().rename(columns={"paid": "amount"})
    interest = rolled.interest.assign(line=interest_line.iloc[0]) if len(interest_line) else rolled.interest.iloc[:0]
    lines = attach_line_meta(pd.concat([lines[~programme], paid, interest], ignore_index=True), inputs)
    lines = lines[lines["amount"] != 0]

    totals = yearly_totals(lines, grid, one_off_costs)
    projection = cover_and_rag(reserves_path(totals, inputs, last_actual), libraries, inputs)
    a = inputs.assumptions
    interim = interim_provision(projection, a.interim_provision_per_year, a.interim_provision_years, a)
    council = without_failed_libraries(council_costs(lines, claims, rolled.ledger, [lease_fees, taken_back, interim], grid),
                                       projection, failures)
    return ScenarioRun(projection, lines, council, claims, rolled.ledger, leases, libraries, schedule, base, flows,
                       exposure, rules, fits)


def shock_exposure(lines: pd.DataFrame, grid: pd.DataFrame, inputs: Inputs, flows: Flows, libraries: pd.DataFrame,
                   scenario: Scenario, last_actual: pd.Series, run_fits: Fits) -> Exposure:
    """What the simulation's shocks act on, from the scenario's central lines in forecast years:
    self-generated income, the ratio lines that move with it, the lines that come and go, the
    other trend costs; and which
    libraries carry their own fabric (a full-repairing lease, unless the council takes running costs)."""
    ahead = lines[forecast_rows(lines, grid)]
    method = ahead["line"].map(inputs.lines.set_index("line")["forecast"])

    def array(rows: pd.DataFrame) -> np.ndarray:
        return library_year_array(rows, "amount", flows.libraries, flows.years)

    lease = libraries.set_index("library_id")["lease_type"].reindex(flows.libraries)
    carries = (lease == "full_repairing").to_numpy() & (not scenario["council.takes_running_costs"])
    last = last_actual.reindex(flows.libraries).to_numpy()[:, None]
    since = flows.years[None, :] - last
    prices = np.exp(inputs.assumptions.log_cost_change(np.broadcast_to(last + 1, since.shape),
                                                       np.broadcast_to(flows.years[None, :], since.shape)))
    spread = run_fits.lumpy.pivot(index="library_id", columns="line", values="sd").reindex(flows.libraries).fillna(0.0)
    lumpy = tuple((bool(ahead.loc[ahead["line"] == line, "side"].eq("income").all()), array(ahead[ahead["line"] == line]),
                   spread[line].to_numpy()) for line in spread.columns if (ahead["line"] == line).any())
    return Exposure(array(ahead[ahead["group"] == "self_generated"]), array(ahead[method == "ratio"]),
                    array(ahead[(ahead["side"] == "expenditure") & (method == "trend") & ~ahead["line"].isin(spread.columns)]),
                    lumpy, carries, np.where(flows.ahead, since, 0), prices)


def simulate_run(run: ScenarioRun, assumptions: Assumptions, draws: int | None = None, shocks: bool = True) -> Simulated:
    """The scenario's futures (:mod:`cml.simulation`), from the same flows and rules as its central path."""
    settings = SimulationSettings.of(assumptions)
    uncertainty = Uncertainty.of(run.fits, run.flows.libraries, settings)
    return simulate(run.flows, run.exposure, run.rules, uncertainty if shocks else uncertainty.without_shocks(),
                    settings, draws)


WEEKS_A_YEAR = 52
TARGET_COLUMNS = ["library_id", "policy_months", "from_financial_year", "headroom", "headroom_financial_year",
                  "free_reserves_now", "reserves_target_now", "rebuild_within_years", "rebuild_by_financial_year",
                  "extra_income", "saving", "confidence", "extra_income_at_confidence",
                  "saving_at_confidence", "self_generated_now", "self_generated_financial_year", "extra_income_share",
                  "extra_income_a_week"]


def fundraising_targets(run: ScenarioRun, assumptions: Assumptions) -> pd.DataFrame:
    """Per library (:mod:`cml.targets`): the extra income and the saving a year, from the first
    forecast year, that keep free reserves at the reserves policy to the horizon, on the central
    forecast and in ``targets.confidence`` of ``targets.draws`` futures; with the lowest headroom
    over the policy on the central path, and today's self-generated income to set them against."""
    flows, rules = run.flows, run.rules
    months = run.libraries.set_index("library_id")["reserves_target_months"].reindex(flows.libraries).to_numpy(float)
    settings = SimulationSettings.of(assumptions)
    draws = assumptions.targets_draws
    futures = draw_flows(np.random.default_rng(np.random.SeedSequence(settings.seed)), draws, flows, run.exposure,
                         Uncertainty.of(run.fits, flows.libraries, settings), rules.pays_building_failures)
    confidence, within = assumptions.targets_confidence, assumptions.targets_rebuild_within_years
    table = lowest_headroom(flows, rules, months).assign(
        policy_months=months, confidence=confidence, rebuild_within_years=within,
        extra_income=solve(flows, rules, months, within, EXTRA_INCOME, None),
        saving=solve(flows, rules, months, within, SAVING, None),
        extra_income_at_confidence=solve(futures, rules, months, within, EXTRA_INCOME, confidence, draws),
        saving_at_confidence=solve(futures, rules, months, within, SAVING, confidence, draws))
    actual = run.projection[run.projection["actual_or_forecast"] == "actual"].sort_values("year")
    today = actual.groupby("library_id").tail(1).set_index("library_id")
    table["from_financial_year"] = table["library_id"].map(today["year"] + 1).map(fy_label)
    table["headroom_financial_year"] = table.pop("headroom_year").map(fy_label)
    table["rebuild_by_financial_year"] = table["library_id"].map(today["year"] + within).map(fy_label)
    table["free_reserves_now"] = table["library_id"].map(today["free_reserves"])
    table["reserves_target_now"] = table["library_id"].map(today["reserves_target"])
    table["self_generated_now"] = table["library_id"].map(today["self_generated_income"])
    table["self_generated_financial_year"] = table["library_id"].map(today["year"]).map(fy_label)
    table["extra_income_share"] = table["extra_income"] / table["self_generated_now"].where(table["self_generated_now"] > 0)
    table["extra_income_a_week"] = table["extra_income"] / WEEKS_A_YEAR
    return table[TARGET_COLUMNS]


# ---------------------------------------------------------------------------------------------
# The stage's entry point


def labelled(frame: pd.DataFrame, scenario: str, names: pd.Series | None = None) -> pd.DataFrame:
    """Add the scenario and financial-year label (and library name) every output row carries."""
    frame = frame.copy()
    frame.insert(0, "scenario", scenario)
    if names is not None:
        frame.insert(2, "name", frame["library_id"].map(names))
    frame.insert(frame.columns.get_loc("year") + 1, "financial_year", frame["year"].map(fy_label))
    return frame.reset_index(drop=True)


def step_effects(inputs: Inputs, baseline: ScenarioRun, steps: list[StepRun], fits: dict[tuple, Fits],
                 names: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each sensitivity step's change in each library's run-out year and horizon free reserves,
    and in the portfolio's libraries running out and the council's cost over the baseline's
    forecast years (:mod:`cml.sensitivity`)."""
    runs = scenario_runs(inputs, [step.scenario for step in steps], fits)
    horizon = int(baseline.projection["year"].max())
    window = baseline.projection.loc[baseline.projection["actual_or_forecast"] == "forecast", ["library_id", "year"]]

    def cost(run: ScenarioRun) -> float:
        return float(run.council.merge(window, on=["library_id", "year"])["amount"].sum())

    base = run_out_and_horizon(baseline.projection)
    results = [(step, run_out_and_horizon(runs[step.scenario.name].projection), cost(runs[step.scenario.name]))
               for step in steps]
    table = sensitivity_table(base, [(step, result) for step, result, _ in results], horizon)
    table.insert(table.columns.get_loc("library_id") + 1, "name", table["library_id"].map(names))
    return table, portfolio_sensitivity(base, cost(baseline), results)


def risk_based_reserves(inputs: Inputs, baseline: ScenarioRun, libraries: pd.DataFrame, risk: pd.DataFrame,
                        assumptions: Assumptions, threshold_years: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each library's risks scored on its latest accounts, and the requirement they add up to
    beside its flat policy and the simulation's 1-in-10 shortfall (:mod:`cml.reserves_policy`)."""
    actual = baseline.projection[baseline.projection["actual_or_forecast"] == "actual"].sort_values("year")
    latest = actual.groupby("library_id").tail(1).set_index("library_id")
    latest_lines, recurring = latest_figures(baseline.lines, latest)
    short = libraries.set_index("library_id")["lease_years_remaining"] <= threshold_years
    scored = score_risks(inputs.reserves_risks, libraries, latest_lines, recurring, short,
                         dict(zip(inputs.lines["line"], inputs.lines["label"])))
    now = pd.DataFrame({"financial_year": latest["year"].map(fy_label), "reserves_target_now": latest["reserves_target"],
                        "policy_months": libraries.set_index("library_id")["reserves_target_months"],
                        "free_reserves_now": latest["free_reserves"]})
    shortfall = simulated_shortfall(risk[risk["scenario"] == BASELINE], assumptions.shortfall_years)
    ahead = baseline.projection.loc[baseline.projection["actual_or_forecast"] == "forecast", ["library_id", "year", "free_reserves"]]
    return scored, reserves_requirement(scored, now, ahead, shortfall, assumptions.far_more_than)


def labelled_targets(targets: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """The baseline's targets with the scenario and library name every output row carries."""
    targets = targets.copy()
    targets.insert(0, "scenario", BASELINE)
    targets.insert(2, "name", targets["library_id"].map(names))
    return targets


def scenario_runs(inputs: Inputs, scenarios: list[Scenario], fits: dict[tuple, Fits] | None = None
                  ) -> dict[str, ScenarioRun]:
    """Every scenario's central run, the models fitted once per :func:`fit_settings`: scenarios
    that start from the same accounts and assumptions share one fit (``fits``, kept across calls
    when given)."""
    fits = {} if fits is None else fits

    def fitted(scenario: Scenario) -> Fits:
        at_cut = replace(inputs, assumptions=scenario.assumptions)
        key = fit_settings(at_cut)
        if key not in fits:
            fits[key] = fit_for(at_cut)
        return fits[key]

    return {s.name: project_scenario(inputs, s, fitted(s)) for s in scenarios}


def build_forecast(inputs: Inputs, scenarios: list[Scenario], steps: list[StepRun] = (),
                   recommendation: Recommendation | None = None) -> Forecast:
    """Run every scenario, stack the results, and run every reconciliation check; then each side
    of each sensitivity step (``steps``, from ``sensitivity.toml``) for the tornado."""
    names = inputs.libraries.set_index("library_id")["name"]
    fits: dict[tuple, Fits] = {}
    runs = scenario_runs(inputs, scenarios, fits)

    def stack(attribute: str, with_names: bool = False) -> pd.DataFrame:
        return pd.concat([labelled(getattr(run, attribute), name, names if with_names else None)
                          for name, run in runs.items()], ignore_index=True)

    if BASELINE not in runs:
        raise ValueError(f"the scenarios must include '{BASELINE}', which the others are compared with")
    baseline = runs[BASELINE]
    baseline_assumptions = next(s.assumptions for s in scenarios if s.name == BASELINE)
    baseline_inputs = replace(inputs, assumptions=baseline_assumptions)
    libraries = library_facts(inputs, baseline.schedule, last_actual_years(baseline_inputs), baseline.leases)
    projection = stack("projection", with_names=True)
    council = stack("council")
    fund = stack("fund")
    forecast = Forecast(
        projection=projection,
        lines=stack("lines"),
        summary=summarise(projection, libraries, council, baseline_assumptions.annual_gap_years),
        peers=peer_table(projection),
        portfolio=portfolio_by_year(projection, council, fund),
        libraries=libraries,
        trustee_projections=inputs.trustee_projections.assign(financial_year=lambda t: t["year"].map(fy_label)),
        one_off_grants=inputs.one_off_grants.merge(inputs.lines[["line", "label"]], on="line").assign(
            financial_year=lambda t: t["year"].map(fy_label)),
        horizon=max(s.assumptions.horizon for s in scenarios),
        grant_schedule=baseline.schedule,
        scenarios=pd.DataFrame([{"scenario": s.name, "description": s.description,
                                 "inherits": s.settings.get("inherits", "")} for s in scenarios]),
        council=council,
        claims=stack("claims", with_names=True),
        base_years=labelled(baseline.base.years, BASELINE),
        grant_base_years=labelled(baseline.base.grant_years, BASELINE),
        line_ratios=baseline.base.ratios,
        lease_extensions=inputs.lease_extensions.assign(
            financial_year=lambda t: t["year"].map(fy_label), years_added=lambda t: t["years_added"].astype(int)),
        fund=fund,
        leases=stack("leases"),
        assumptions=baseline_assumptions,
        settings={s.name: dict(s.settings) for s in scenarios},
        recommendation=recommendation if recommendation and recommendation.scenario in {s.name for s in scenarios} else None,
    )
    by_library, by_portfolio = step_effects(inputs, baseline, steps, fits, names)
    library_risks, portfolio_risks = [], []
    for name, run in runs.items():  # one scenario's futures in memory at a time: summarised, then let go
        sim = simulate_run(run, next(s.assumptions for s in scenarios if s.name == name))
        library_risks.append(labelled(library_risk(sim), name, names))
        portfolio_risks.append(labelled(portfolio_risk(sim), name))
        del sim
    forecast = replace(forecast, risk=pd.concat(library_risks, ignore_index=True),
                       portfolio_risk=pd.concat(portfolio_risks, ignore_index=True),
                       fits=fit_table(baseline.fits), fit_records=tuple(baseline.fits.records()),
                       targets=labelled_targets(fundraising_targets(baseline, baseline_assumptions), names),
                       sensitivity=by_library, portfolio_sensitivity=by_portfolio)
    risks, requirement = risk_based_reserves(inputs, baseline, libraries, forecast.risk, baseline_assumptions,
                                             forecast.settings[BASELINE]["lease.threshold_years"])
    forecast = replace(forecast, reserves_risks=risks.assign(name=lambda t: t["library_id"].map(names)),
                       reserves_requirement=requirement.assign(name=lambda t: t["library_id"].map(names)))
    return replace(forecast, checks=tuple(assert_reconciles(forecast, inputs)))


def fit_table(fits: Fits) -> pd.DataFrame:
    """Per library: the growth each model gives and how much of it is the library's own evidence."""
    income = fits.self_generated.growth.add_prefix("income_")
    costs = fits.costs.growth[["growth"]].rename(columns={"growth": "cost_drift"})
    table = income.join(costs).reset_index().rename(columns={"index": "library_id"})
    table["income_growth_percent"] = np.expm1(table["income_growth"]) * 100
    return table
