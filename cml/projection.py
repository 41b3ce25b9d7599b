"""The reserves-and-deficit projection: stage 3 of the pipeline.

From each library's last year of actuals to the horizon, year by year: income and expenditure by
line, the council grant from the schedule, surplus or deficit, closing and free reserves, months
of cover and a RAG status. Everything is computed on whole frames (all libraries and years at
once); the only loops are over scenarios (here) and over years where a year depends on the one
before (the contingency fund, lease extensions), each still vectorised across libraries.

How each line is forecast is data (``lines.csv`` column ``forecast``):

* ``schedule`` - the council taper grant from :mod:`cml.schedule`;
* ``one_off`` - only what ``one_off_grants.csv`` names for a forecast year (nothing otherwise);
* ``trend`` - the average of the latest ``base_years`` full actual years (a year a library did
  not report the line counts as nil), grown each year by ``growth.costs`` or ``growth.income``.

In forecast years restricted funds, designated funds and fixed assets stay at their last actual
value, so each year's surplus or deficit moves free reserves pound for pound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cml.adjustments import (
    add_shocks,
    apply_closure,
    apply_leases,
    apply_levers,
    forecast_rows,
    lease_path,
    lever_libraries,
    original_lease_end,
    transfer_to_council,
    years_left,
)
from cml.checks import assert_reconciles
from cml.fund import simulate_fund
from cml.fy import fy_end, fy_label, fy_of_dates, year_ranges
from cml.inputs import CONTINGENCY_GRANT, Assumptions, Inputs
from cml.scenarios import BASELINE, Scenario
from cml.schedule import grant_schedule, last_grant_year, one_off_grants

RAG_ORDER = ("Red", "Amber", "Green")
GAP_YEARS = 3  # the annual gap is averaged over this many forecast years without the taper grant
COUNCIL_COMPONENTS = ("council_grant", "fund_payments", "running_costs", "fabric_repairs", "lease_fees")


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
    assumptions: Assumptions
    settings: dict[str, dict] = field(default_factory=dict)
    checks: tuple = ()


# ---------------------------------------------------------------------------------------------
# Which years are actual


def last_actual_years(inputs: Inputs) -> pd.Series:
    """Each library's last year of actuals: its latest reserves year, capped at ``actuals_to``."""
    latest = inputs.reserves.groupby("library_id")["year"].max()
    cutoff = inputs.assumptions.actuals_to
    return latest if cutoff is None else latest.clip(upper=cutoff)


def first_years(libraries: pd.DataFrame) -> pd.Series:
    """The financial year each library transferred in (its first, usually part, year)."""
    return fy_of_dates(pd.to_datetime(libraries["transfer_date"])).set_axis(libraries["library_id"].to_numpy())


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


def trend_base(actuals: pd.DataFrame, inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """Average of each trend line over the latest ``base_years`` full years before the forecast.

    The transfer year is a part year, so it is left out whenever a full year exists. A line
    missing from a year's accounts counts as nil in the average.
    """
    trend_lines = inputs.lines.loc[inputs.lines["forecast"] == "trend", "line"]
    first_full = (first_years(inputs.libraries) + 1).reindex(last_actual.index)
    window_start = np.maximum(last_actual - inputs.assumptions.base_years + 1, np.minimum(first_full, last_actual))
    years_in_window = last_actual - window_start + 1
    in_window = (actuals["year"] >= actuals["library_id"].map(window_start)) & (
        actuals["year"] <= actuals["library_id"].map(last_actual))
    window = actuals[in_window & actuals["line"].isin(trend_lines)]
    base = window.groupby(["library_id", "line"], as_index=False)["amount"].sum()
    base["base"] = base["amount"] / base["library_id"].map(years_in_window)
    base["base_year"] = base["library_id"].map(last_actual)
    return base[["library_id", "line", "base", "base_year"]]


def forecast_trend_lines(base: pd.DataFrame, grid: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Grow each base from its base year at the growth rate of its side (costs or income)."""
    forecast_years = grid[grid["actual_or_forecast"] == "forecast"][["library_id", "year"]]
    rows = forecast_years.merge(base, on="library_id")
    side = rows["line"].map(inputs.lines.set_index("line")["side"])
    growth = np.where(side == "expenditure", inputs.assumptions.cost_growth, inputs.assumptions.income_growth)
    rows["amount"] = rows["base"] * (1.0 + growth) ** (rows["year"] - rows["base_year"])
    return rows[["library_id", "year", "line", "amount"]]


def forecast_grant_lines(schedule: pd.DataFrame, grid: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Council taper grant and programme one-off grants in forecast years."""
    forecast_years = grid[grid["actual_or_forecast"] == "forecast"][["library_id", "year"]]
    grant_line = inputs.lines.loc[inputs.lines["forecast"] == "schedule", "line"].iloc[0]  # exactly one: checked
    taper = schedule.assign(line=grant_line).rename(columns={"council_grant": "amount"})
    one_offs = one_off_grants(inputs.libraries, inputs.one_off_grants)
    grants = pd.concat([taper, one_offs], ignore_index=True)
    return forecast_years.merge(grants, on=["library_id", "year"])[["library_id", "year", "line", "amount"]]


def all_lines(inputs: Inputs, schedule: pd.DataFrame, grid: pd.DataFrame, last_actual: pd.Series) -> pd.DataFrame:
    """Actual and forecast amounts by line, with each line's side and group attached."""
    actuals = actual_lines(inputs, last_actual)
    base = trend_base(actuals, inputs, last_actual)
    lines = pd.concat(
        [actuals, forecast_trend_lines(base, grid, inputs), forecast_grant_lines(schedule, grid, inputs)],
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


def yearly_totals(lines: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Grant, self-generated income, other income, income, expenditure and surplus per library-year."""
    income = lines[lines["side"] == "income"]
    heads = {
        "council_grant": income[income["group"] == "council_grant"],
        "self_generated_income": income[income["group"] == "self_generated"],
        "other_income": income[~income["group"].isin(["council_grant", "self_generated"])],
        "fund_support": income[income["line"] == CONTINGENCY_GRANT],
        "income": income,
        "expenditure": lines[lines["side"] == "expenditure"],
    }
    totals = grid.copy()
    for head, rows in heads.items():
        summed = rows.groupby(["library_id", "year"])["amount"].sum().rename(head)
        totals = totals.join(summed, on=["library_id", "year"])
    totals[list(heads)] = totals[list(heads)].fillna(0.0)
    totals["surplus"] = totals["income"] - totals["expenditure"]
    return totals


def free_reserves_at_cut(inputs: Inputs, last_actual: pd.Series) -> pd.Series:
    """Each library's free reserves (CC19) at the end of its last actual year."""
    reserves = inputs.reserves[inputs.reserves["year"] == inputs.reserves["library_id"].map(last_actual)]
    free = reserves["unrestricted"] - reserves["designated"] - reserves["fixed_assets"]
    return pd.Series(free.to_numpy(), index=reserves["library_id"].to_numpy())


def reserves_path(totals: pd.DataFrame, inputs: Inputs, last_actual: pd.Series) -> pd.DataFrame:
    """Opening, closing and free reserves: actuals from reserves.csv, then opening + surplus.

    Closing total funds = unrestricted + restricted. Free reserves (CC19) = unrestricted less
    designated funds less fixed assets; in forecast years the tied-up funds stay at their last
    actual value.
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
    previous = out.groupby("library_id")["closing_reserves"].shift()
    out["opening_reserves"] = previous.fillna(out["closing_reserves"] - out["surplus"])
    return out.drop(columns=["closing", "tied"])


def cover_and_rag(frame: pd.DataFrame, libraries: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Months of cover, the reserves-policy target in pounds, and the RAG status.

    Red: free reserves below ``red_below_months`` of expenditure (or gone). Amber: below the
    higher of ``amber_below_months`` and the library's own reserves policy. Green otherwise.
    """
    monthly = frame["expenditure"] / 12.0
    target_months = frame["library_id"].map(libraries.set_index("library_id")["reserves_target_months"])
    frame["reserves_target"] = target_months * monthly
    frame["months_of_cover"] = (frame["free_reserves"] / monthly.where(monthly > 0)).round(10)
    rag = inputs.assumptions
    amber_line = np.maximum(rag.amber_below_months, target_months)
    cover = frame["months_of_cover"].fillna(np.inf)
    frame["rag"] = np.select(
        [(frame["free_reserves"] < 0) | (cover < rag.red_below_months), cover < amber_line],
        ["Red", "Amber"],
        "Green",
    )
    return frame


# ---------------------------------------------------------------------------------------------
# Summaries


def library_facts(inputs: Inputs, schedule: pd.DataFrame, last_actual: pd.Series) -> pd.DataFrame:
    """Library records with lease end, years of lease left at the end of actuals, and last grant year."""
    libraries = inputs.libraries.copy()
    libraries["lease_end"] = original_lease_end(libraries)
    as_of = libraries["library_id"].map(last_actual).map(fy_end)
    libraries["lease_years_remaining"] = years_left(libraries["lease_end"], as_of).round(1)
    libraries["last_actual_year"] = libraries["library_id"].map(last_actual).map(fy_label)
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


def summarise(projection: pd.DataFrame, libraries: pd.DataFrame, council: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario and library: the headline figures of a briefing."""
    keys = ["scenario", "library_id"]
    by = projection.groupby(keys, sort=False)
    last_grant = projection["library_id"].map(libraries.set_index("library_id")["last_grant_year"])
    now = projection[projection["actual_or_forecast"] == "actual"].groupby(keys).tail(1).set_index(keys)
    at_grant_end = projection[projection["financial_year"] == last_grant].set_index(keys)
    horizon = by.tail(1).set_index(keys)
    run_out = projection[projection["free_reserves"] < 0].groupby(keys)["financial_year"].first()
    after_grant = projection[(projection["actual_or_forecast"] == "forecast") & (projection["council_grant"] == 0)]
    first_after = after_grant.groupby(keys).head(GAP_YEARS)
    own_income = first_after["income"] - first_after["fund_support"]
    gap_groups = [first_after[k] for k in keys]
    gap = (first_after["expenditure"] - own_income).groupby(gap_groups).mean()
    gap_years = first_after["financial_year"].groupby(gap_groups).agg(lambda labels: year_ranges(list(labels)))
    summary = horizon[["name"]].copy()
    summary["rag_now"] = now["rag"]
    summary["months_of_cover_now"] = now["months_of_cover"]
    summary["last_grant_year"] = horizon.index.get_level_values("library_id").map(
        libraries.set_index("library_id")["last_grant_year"])
    summary["months_of_cover_at_grant_end"] = at_grant_end["months_of_cover"]
    summary["run_out_year"] = run_out.reindex(summary.index).astype(object).where(lambda s: s.notna(), None)
    summary["horizon_closing_reserves"] = horizon["closing_reserves"]
    summary["horizon_free_reserves"] = horizon["free_reserves"]
    summary["annual_gap"] = gap.reindex(summary.index)
    summary["annual_gap_years"] = gap_years.reindex(summary.index)
    council_forecast = council.merge(comparison_years(projection), on=["library_id", "year"])
    summary["council_cost"] = council_forecast.groupby(keys)["amount"].sum().reindex(summary.index, fill_value=0.0)
    return summary.reset_index()


def portfolio_by_year(projection: pd.DataFrame, council: pd.DataFrame, fund: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and year: libraries by RAG, money summed over libraries, council cost, fund.

    ``deficit`` is the sum of the deficits of libraries in deficit (a positive number), not
    the net of surpluses and deficits: it is what the libraries must find from reserves.
    ``council_cost_*`` columns are the council's spending by component and in total;
    ``fund_closing`` and ``fund_unmet`` come from the contingency fund's ledger.
    """
    keys = ["scenario", "year", "financial_year"]
    counts = pd.crosstab([projection[k] for k in keys], projection["rag"]).reindex(columns=list(RAG_ORDER), fill_value=0)
    counts.columns = [f"libraries_{c.lower()}" for c in counts.columns]
    money = projection.assign(deficit=(-projection["surplus"]).clip(lower=0)).groupby(keys)[
        ["council_grant", "income", "expenditure", "deficit", "closing_reserves", "free_reserves"]
    ].sum()
    cost = council.pivot_table(index=["scenario", "year", "financial_year"], columns="component", values="amount",
                               aggfunc="sum", fill_value=0.0)
    cost = cost.reindex(columns=list(COUNCIL_COMPONENTS), fill_value=0.0).add_prefix("council_cost_")
    cost["council_cost_total"] = cost.sum(axis=1)
    ledger = fund.set_index(keys)[["closing", "unmet"]].rename(columns={"closing": "fund_closing", "unmet": "fund_unmet"})
    portfolio = counts.join(money).join(cost).join(ledger)
    portfolio[cost.columns] = portfolio[cost.columns].fillna(0.0)
    return portfolio.reset_index()


def option_comparison(forecast: Forecast) -> pd.DataFrame:
    """One row per scenario, the figures an officer needs to write an options appraisal: libraries
    at risk in the scenario's first forecast year and at the horizon, when reserves run out, when
    the contingency fund is exhausted (``None``: not within the horizon), and the council's cost
    and the fund's payments over the :func:`comparison_years` (``cost_years``)."""
    forecast_rows = forecast.projection[forecast.projection["actual_or_forecast"] == "forecast"]
    window = comparison_years(forecast.projection)
    first_year = forecast_rows.groupby("scenario")["year"].min()
    first = forecast_rows[forecast_rows["year"] == forecast_rows["scenario"].map(first_year)]
    horizon = forecast.projection[forecast.projection["year"] == forecast.projection.groupby("scenario")["year"].transform("max")]
    costs = forecast.council.merge(window, on=["library_id", "year"])
    by_component = costs.pivot_table(index="scenario", columns="component", values="amount", aggfunc="sum", fill_value=0.0)
    fund = forecast.fund[forecast.fund["year"] >= window["year"].min()]
    dry = fund[(fund["closing"] <= 0.005) | (fund["unmet"] > 0.005)].groupby("scenario")["financial_year"].first()
    table = forecast.scenarios.set_index("scenario")[["description"]].copy()
    table["first_forecast_year"] = first_year.map(fy_label)
    table["at_risk_first_forecast_year"] = first[first["rag"] != "Green"].groupby("scenario").size()
    table["red_at_horizon"] = horizon[horizon["rag"] == "Red"].groupby("scenario").size()
    table["libraries_running_out"] = forecast.summary[forecast.summary["run_out_year"].notna()].groupby("scenario").size()
    table["fund_exhausted_in"] = dry.reindex(table.index).astype(object).where(lambda d: d.notna(), None)
    table["cost_years"] = f"{fy_label(window['year'].min())} to {fy_label(window['year'].max())}"
    forecast_fund = fund.groupby("scenario")[["payments", "unmet"]].sum()
    table["fund_paid_in_forecast"] = forecast_fund["payments"]
    table["fund_claims_unmet"] = forecast_fund["unmet"]
    table = table.join(by_component.add_prefix("council_cost_"))
    cost_columns = [c for c in table.columns if c.startswith("council_cost_")]
    table["council_cost_total"] = table[cost_columns].sum(axis=1)
    table["council_cost_per_year"] = table["council_cost_total"] / window["year"].nunique()
    table["horizon_free_reserves"] = horizon.groupby("scenario")["free_reserves"].sum()
    table["change_from_baseline"] = table["horizon_free_reserves"] - table.loc[BASELINE, "horizon_free_reserves"]
    counts = ["at_risk_first_forecast_year", "red_at_horizon", "libraries_running_out"]
    table[counts] = table[counts].fillna(0).astype(int)
    money = table.columns[table.columns.str.startswith(("council_cost_", "fund_paid", "fund_claims"))]
    table[money] = table[money].fillna(0.0)
    return table.reset_index()


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
    accounts show in actual years, as simulated after); the rest are costs taken back or fees.
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


def project_scenario(inputs: Inputs, scenario: Scenario) -> ScenarioRun:
    """Lines, adjustments, the contingency fund, then reserves and RAG, for one scenario."""
    inputs = replace(inputs, assumptions=scenario.assumptions)
    schedule = grant_schedule(inputs.libraries, inputs.taper, inputs.assumptions.grant_payment)
    last_actual = last_actual_years(inputs)
    libraries = scenario_libraries(inputs.libraries, scenario)
    grid = year_grid(inputs, last_actual)
    lines = all_lines(inputs, schedule, grid, last_actual)
    lines = apply_levers(lines, grid, scenario, libraries)
    lines = apply_closure(lines, grid, scenario)
    lines = add_shocks(lines, grid, scenario)
    leases = lease_path(libraries, grid, scenario)
    lines, lease_fees = apply_leases(lines, grid, scenario, leases)
    running_costs = set(inputs.lines.loc[inputs.lines["running_cost"] == "yes", "line"])
    lines, taken_back = transfer_to_council(lines, grid, scenario, libraries, running_costs)
    lines = attach_line_meta(lines, inputs)

    programme = forecast_rows(lines, grid) & (lines["line"] == CONTINGENCY_GRANT)
    before_claims = yearly_totals(lines[~programme], grid)
    free_at_cut = free_reserves_at_cut(inputs, last_actual)
    claims, fund = simulate_fund(before_claims, lines, free_at_cut, scenario, sorted(grid["year"].unique()))
    paid = claims.groupby(["library_id", "year"], as_index=False)["paid"].sum().rename(columns={"paid": "amount"})
    lines = attach_line_meta(pd.concat([lines[~programme], paid.assign(line=CONTINGENCY_GRANT)], ignore_index=True), inputs)
    lines = lines[lines["amount"] != 0]

    totals = yearly_totals(lines, grid)
    projection = cover_and_rag(reserves_path(totals, inputs, last_actual), libraries, inputs)
    council = council_costs(lines, claims, fund, [lease_fees, taken_back], grid)
    return ScenarioRun(projection, lines, council, claims, fund, leases, libraries, schedule)


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


def build_forecast(inputs: Inputs, scenarios: list[Scenario]) -> Forecast:
    """Run every scenario, stack the results, and run every reconciliation check."""
    names = inputs.libraries.set_index("library_id")["name"]
    runs = {s.name: project_scenario(inputs, s) for s in scenarios}

    def stack(attribute: str, with_names: bool = False) -> pd.DataFrame:
        return pd.concat([labelled(getattr(run, attribute), name, names if with_names else None)
                          for name, run in runs.items()], ignore_index=True)

    if BASELINE not in runs:
        raise ValueError(f"the scenarios must include '{BASELINE}', which the others are compared with")
    baseline = runs[BASELINE]
    baseline_assumptions = next(s.assumptions for s in scenarios if s.name == BASELINE)
    libraries = library_facts(inputs, baseline.schedule, last_actual_years(replace(inputs, assumptions=baseline_assumptions)))
    projection = stack("projection", with_names=True)
    council = stack("council")
    fund = stack("fund")
    forecast = Forecast(
        projection=projection,
        lines=stack("lines"),
        summary=summarise(projection, libraries, council),
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
        claims=stack("claims", with_names=True) if any(len(r.claims) for r in runs.values()) else
        pd.DataFrame(columns=["scenario", "library_id", "name", "year", "financial_year", "kind", "claimed", "paid", "unmet"]),
        fund=fund,
        leases=stack("leases"),
        assumptions=baseline_assumptions,
        settings={s.name: dict(s.settings) for s in scenarios},
    )
    return replace(forecast, checks=tuple(assert_reconciles(forecast, inputs)))
