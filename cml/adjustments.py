"""How a scenario's settings change the forecast lines: stage 4 of the pipeline.

Each function takes the lines of one scenario (actuals and forecast) and changes only forecast
rows, so actuals are never rewritten. What the council takes on is returned as ``council``
rows (``library_id, year, component, amount``) instead of vanishing.
"""

from __future__ import annotations

import pandas as pd

from cml.fy import fy_end, parse_fy
from cml.inputs import BUILDING_FAILURE, BUILDING_REPAIRS, BUSINESS_GRANT, LEASE_FEES, ONE_OFF_COSTS, OTHER_GRANTS
from cml.scenarios import Scenario
from cml.schedule import add_years

SELF_GENERATED = "self_generated"


def forecast_rows(lines: pd.DataFrame, grid: pd.DataFrame) -> pd.Series:
    """True for line rows in a library's forecast years."""
    flags = grid.set_index(["library_id", "year"])["actual_or_forecast"]
    keys = pd.MultiIndex.from_frame(lines[["library_id", "year"]])
    return pd.Series(flags.reindex(keys).to_numpy() == "forecast", index=lines.index)


def _dated_rows(rows: list[dict], line: str, amount_field: str, grid: pd.DataFrame) -> pd.DataFrame:
    """Rows of a scenario table (``library_id, financial_year, amount``) as lines.

    The years were checked to be forecast years (``check_scenarios_against_inputs``); the merge
    with the grid only drops what is outside a library's own years.
    """
    frame = pd.DataFrame(
        [{"library_id": r["library_id"], "year": parse_fy(r["financial_year"]), "line": line, "amount": float(r[amount_field])}
         for r in rows],
        columns=["library_id", "year", "line", "amount"],
    ).astype({"year": int, "amount": float})
    forecast_years = grid[grid["actual_or_forecast"] == "forecast"][["library_id", "year"]]
    return frame.merge(forecast_years, on=["library_id", "year"])


def lever_libraries(scenario: Scenario, libraries: pd.DataFrame) -> pd.Series:
    """The libraries a trustee lever applies to: those named, or every library when none is."""
    named = scenario["levers.libraries"]
    return libraries["library_id"].isin(named) if named else pd.Series(True, index=libraries.index)


def apply_levers(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario, libraries: pd.DataFrame) -> pd.DataFrame:
    """Trustee levers: leaner costs, a higher income target, a one-off repair or project."""
    lines = lines.copy()
    chosen = set(libraries.loc[lever_libraries(scenario, libraries), "library_id"])
    target = forecast_rows(lines, grid) & lines["library_id"].isin(chosen)
    costs = target & (lines["side"] == "expenditure")
    income = target & (lines["group"] == SELF_GENERATED)
    lines.loc[costs, "amount"] *= 1.0 + scenario["levers.cost_change"]
    lines.loc[income, "amount"] *= 1.0 + scenario["levers.income_change"]
    if scenario["levers.one_off_cost"] > 0 and scenario["levers.one_off_year"]:
        rows = [{"library_id": lib, "financial_year": scenario["levers.one_off_year"], "amount": scenario["levers.one_off_cost"]}
                for lib in sorted(chosen)]
        lines = pd.concat([lines, _dated_rows(rows, ONE_OFF_COSTS, "amount", grid)], ignore_index=True)
    return lines


def apply_closure(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """A closure like Covid's: ``weekly_loss`` across all libraries, shared by self-generated income.

    The closure year loses ``closure_weeks`` weeks; each following year loses the share of a full
    year given by ``recovery``. Each library's loss is in proportion to its self-generated income
    that year, taken from each self-generated line pro rata and never below nil.
    """
    if not scenario["shocks.closure_year"] or scenario["shocks.closure_weeks"] <= 0:
        return lines
    lines = lines.copy()
    start = parse_fy(scenario["shocks.closure_year"])
    weeks = [scenario["shocks.closure_weeks"]] + [52.0 * share for share in scenario["shocks.recovery"]]
    loss_by_year = {start + i: scenario["shocks.weekly_loss"] * w for i, w in enumerate(weeks)}
    hit = forecast_rows(lines, grid) & (lines["group"] == SELF_GENERATED) & lines["year"].isin(loss_by_year)
    income = lines.loc[hit, "amount"]
    year_total = income.groupby(lines.loc[hit, "year"]).transform("sum")
    loss = lines.loc[hit, "year"].map(loss_by_year) * income / year_total.where(year_total > 0)
    lines.loc[hit, "amount"] = (income - loss.fillna(0.0)).clip(lower=0.0)
    return lines


def add_shocks(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Dated one-offs: government business grants (income) and building failures (fabric repairs)."""
    extra = [
        _dated_rows(scenario["shocks.business_grants"], BUSINESS_GRANT, "amount", grid),
        _dated_rows(scenario["shocks.building_failures"], BUILDING_FAILURE, "cost", grid),
    ]
    return pd.concat([lines, *extra], ignore_index=True)


def original_lease_end(libraries: pd.DataFrame) -> pd.Series:
    """When each library's first lease ends: its start plus its term."""
    return add_years(pd.to_datetime(libraries["lease_start"]), libraries["lease_years"].astype(int))


def years_left(lease_end: pd.Series, as_of: pd.Series | pd.Timestamp) -> pd.Series:
    """Years of lease left on a date, as funders and the council count them (days / 365.25)."""
    return (lease_end - as_of).dt.days / 365.25


def lease_path(libraries: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Each library's lease at each year end (31 March), extended in forecast years when the term
    runs short; ``short_of_security`` marks the years with less left than funders ask for.

    When ``threshold_years`` or less remain at a year end, a library extends by
    ``extension_years`` (5 in the status quo; Option 1's new 10-year lease on top of the
    unexpired term is the same rule with 10), paying one set of fees each time. With a 7-year
    threshold and 5-year extensions, a lease with under 2 years left is extended two years
    running: the repeated fees that led the council to offer 10-year leases (seed 000 para 28).
    """
    threshold = scenario["lease.threshold_years"]
    extension = scenario["lease.extension_years"]
    years = sorted(grid["year"].unique())
    forecast = grid.pivot(index="library_id", columns="year", values="actual_or_forecast").reindex(
        index=libraries["library_id"], columns=years)
    end = original_lease_end(libraries).reset_index(drop=True)
    rows = []
    for year in years:
        remaining = years_left(end, fy_end(year))
        extend = pd.Series((forecast[year].to_numpy() == "forecast") & (remaining <= threshold).to_numpy())
        end = add_years(end, extend.astype(int) * extension)
        rows.append(pd.DataFrame({"library_id": libraries["library_id"].to_numpy(), "year": year,
                                  "lease_years_remaining": years_left(end, fy_end(year)).to_numpy(),
                                  "extended": extend.to_numpy()}))
    path = pd.concat(rows, ignore_index=True)
    path["short_of_security"] = path["lease_years_remaining"] < scenario["funders.min_lease_years"]
    return path.merge(grid[["library_id", "year"]], on=["library_id", "year"])


def apply_leases(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario, path: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Extension fees as a cost line, and other-grants income lost while security is short.

    Returns the lines and the council's own fees per extension.
    """
    lines = lines.copy()
    extended = path[path["extended"]]
    fees = extended.assign(line=LEASE_FEES, amount=scenario["lease.library_fees"])[["library_id", "year", "line", "amount"]]
    short = path[path["short_of_security"]].set_index(["library_id", "year"]).index
    keys = pd.MultiIndex.from_frame(lines[["library_id", "year"]])
    cut = forecast_rows(lines, grid) & (lines["line"] == OTHER_GRANTS) & keys.isin(short)
    lines.loc[cut, "amount"] *= 1.0 - scenario["funders.other_grants_lost_share"]
    council = extended.assign(component="lease_fees", amount=scenario["lease.council_fees"])
    lines = pd.concat([lines, fees[fees["amount"] > 0]], ignore_index=True)
    return lines, council[["library_id", "year", "component", "amount"]]


def transfer_to_council(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario, libraries: pd.DataFrame,
                        running_cost_lines: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Costs the council carries: the building fabric of internal-repairing leases (under Option 2
    the full-repairing leases have become internal-repairing: ``scenario_libraries``), or every
    running cost under Option 3. Moved out of the libraries' lines.
    """
    forecast = forecast_rows(lines, grid)
    lease = lines["library_id"].map(libraries.set_index("library_id")["lease_type"])
    if scenario["council.takes_running_costs"]:
        moved, component = forecast & lines["line"].isin(running_cost_lines), "running_costs"
    else:
        fabric = lines["line"].isin([BUILDING_REPAIRS, BUILDING_FAILURE])
        moved, component = forecast & fabric & (lease == "internal_repairing"), "fabric_repairs"
    council = lines.loc[moved, ["library_id", "year", "amount"]].assign(component=component)
    return lines[~moved], council[["library_id", "year", "component", "amount"]]
