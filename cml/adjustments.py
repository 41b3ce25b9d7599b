"""How a scenario's settings change the forecast lines: stage 4 of the pipeline.

Each function takes the lines of one scenario (actuals and forecast) and changes only forecast
rows, so actuals are never rewritten. What the council takes on is returned as ``council``
rows (``library_id, year, component, amount``) instead of vanishing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cml.fy import parse_fy, period_ends
from cml.inputs import (BUILDING_FAILURE, BUILDING_REPAIRS, BUSINESS_GRANT, LEASE_FEES, ONE_OFF_COSTS, OTHER_GRANTS,
                        PLANNED_INCOME)
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


def apply_levers(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario, libraries: pd.DataFrame,
                 one_off_costs: set[str]) -> pd.DataFrame:
    """Trustee levers: leaner costs, a higher income target, a sum a year raised or saved (the
    briefing's fundraising target, :mod:`cml.targets`), a one-off repair or project.

    ``levers.extra_income`` is a ``planned_income`` line of that sum in every forecast year;
    ``levers.saving`` comes off the year's recurring costs (every expenditure line but
    ``one_off_costs``) in proportion to each, so recurring spending, and with it the reserves
    policy in pounds, falls by the sum (by all of them where they are smaller).
    """
    lines = lines.copy()
    chosen = set(libraries.loc[lever_libraries(scenario, libraries), "library_id"])
    target = forecast_rows(lines, grid) & lines["library_id"].isin(chosen)
    costs = target & (lines["side"] == "expenditure")
    income = target & (lines["group"] == SELF_GENERATED)
    lines.loc[costs, "amount"] *= 1.0 + scenario["levers.cost_change"]
    lines.loc[income, "amount"] *= 1.0 + scenario["levers.income_change"]
    if scenario["levers.saving"] > 0:
        recurring = costs & ~lines["line"].isin(one_off_costs)
        year_total = lines.loc[recurring].groupby(["library_id", "year"])["amount"].transform("sum")
        share = (scenario["levers.saving"] / year_total.where(year_total > 0)).clip(upper=1.0).fillna(0.0)
        lines.loc[recurring, "amount"] *= 1.0 - share
    if scenario["levers.extra_income"] > 0:
        years = grid[(grid["actual_or_forecast"] == "forecast") & grid["library_id"].isin(chosen)]
        lines = pd.concat([lines, years[["library_id", "year"]].assign(line=PLANNED_INCOME,
                                                                        amount=float(scenario["levers.extra_income"]))],
                          ignore_index=True)
    if scenario["levers.one_off_cost"] > 0 and scenario["levers.one_off_year"]:
        rows = [{"library_id": lib, "financial_year": scenario["levers.one_off_year"], "amount": scenario["levers.one_off_cost"]}
                for lib in sorted(chosen)]
        lines = pd.concat([lines, _dated_rows(rows, ONE_OFF_COSTS, "amount", grid)], ignore_index=True)
    return lines


def apply_closure(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """A closure like Covid's: ``weekly_loss`` across all libraries, shared by self-generated income.

    The closure year loses ``closure_weeks`` weeks; each following year loses the share of a full
    year given by ``recovery``. Each library's loss is in proportion to its self-generated income
    that year, taken from each self-generated line pro rata and never below nil. (Café cost of
    sales follows café sales, as it is forecast after this: ``projection.ratio_lines``.)
    """
    if not scenario["shocks.closure_year"] or scenario["shocks.closure_weeks"] <= 0:
        return lines
    start = parse_fy(scenario["shocks.closure_year"])
    weeks = [scenario["shocks.closure_weeks"]] + [52.0 * share for share in scenario["shocks.recovery"]]
    loss_by_year = {start + i: scenario["shocks.weekly_loss"] * w for i, w in enumerate(weeks)}
    lines = lines.copy()
    hit = forecast_rows(lines, grid) & (lines["group"] == SELF_GENERATED) & lines["year"].isin(loss_by_year)
    income = lines.loc[hit, "amount"]
    year_total = income.groupby(lines.loc[hit, "year"]).transform("sum")
    loss = lines.loc[hit, "year"].map(loss_by_year) * income / year_total.where(year_total > 0)
    lines.loc[hit, "amount"] = (income - loss.fillna(0.0)).clip(lower=0.0)
    return lines


def apply_income_cuts(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Council decisions that cut a library's income (seed 000 para 15: a children's centre in the
    building closing): the amount is taken from the named line that year (never below nil), and
    what was actually lost becomes an ``income_cut`` need the contingency fund may meet.

    Returns the lines and the needs (``library_id, year, kind, amount``).
    """
    rows = scenario["shocks.council_income_cuts"]
    if not rows:
        return lines, pd.DataFrame(columns=["library_id", "year", "kind", "amount"])
    cuts = pd.DataFrame([{"library_id": r["library_id"], "year": parse_fy(r["financial_year"]), "line": r["line"],
                          "amount": float(r["amount"])} for r in rows]).groupby(["library_id", "year", "line"])["amount"].sum()
    keys = pd.MultiIndex.from_frame(lines[["library_id", "year", "line"]])
    hit = forecast_rows(lines, grid) & pd.Series(keys.isin(cuts.index), index=lines.index)
    lines = lines.copy()
    wanted = pd.Series(cuts.reindex(keys[hit.to_numpy()]).to_numpy(), index=lines.index[hit])
    taken = wanted.clip(upper=lines.loc[hit, "amount"])
    lines.loc[hit, "amount"] -= taken
    lost = taken.groupby([lines.loc[hit, "library_id"], lines.loc[hit, "year"]]).sum()
    needs = lost.rename("amount").reset_index().assign(kind="income_cut")
    return lines, needs[["library_id", "year", "kind", "amount"]]


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


def recorded_years_added(extensions: pd.DataFrame, library_ids: pd.Series, year: int) -> pd.Series:
    """Years added to each library's lease by the extensions ``lease_extensions.csv`` records in ``year``."""
    granted = extensions[extensions["year"] == year].groupby("library_id")["years_added"].sum()
    return library_ids.map(granted).fillna(0).astype(int).reset_index(drop=True)


def lease_path(libraries: pd.DataFrame, extensions: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Each library's lease at each year end (its accounts' year end), from the facts, then the scenario's rule.

    Actual years take the extensions ``lease_extensions.csv`` records (their fees are in the
    accounts). In forecast years:

    * with ``new_lease_years`` (Option 1), the library takes one new lease of that many years on
      top of the unexpired term in its first forecast year: one deed, one set of fees, in place of
      the rollovers (seed 000 para 28-30: "instead of repeated 5-year rollovers"; the seeds say
      nothing of renewing the new lease, so no further extension is assumed within the horizon);
    * otherwise a lease with ``threshold_years`` or less left at a year end is extended by
      ``extension_years`` (seed 000 para 28), one extension per trigger and never in two
      consecutive years, each with one set of fees.

    ``short_of_security`` marks the years with less left than funders ask for; ``fees`` is what
    the library pays in a forecast year for its extension.
    """
    threshold = scenario["lease.threshold_years"]
    years = sorted(grid["year"].unique())
    status = grid.pivot(index="library_id", columns="year", values="actual_or_forecast").reindex(
        index=libraries["library_id"], columns=years)
    first_forecast = (status == "forecast").idxmax(axis=1).where((status == "forecast").any(axis=1))
    ids = libraries["library_id"].reset_index(drop=True)
    end = original_lease_end(libraries).reset_index(drop=True)
    extended_last_year = pd.Series(False, index=ids.index)
    rollovers = scenario["lease.new_lease_years"] == 0  # the new lease replaces the 5-year rollovers
    rows = []
    year_ends = libraries["year_end"].reset_index(drop=True)
    for year in years:
        as_of = period_ends(year, year_ends)
        forecast = pd.Series(status[year].to_numpy() == "forecast")
        new_lease = forecast & (first_forecast.to_numpy() == year) & (scenario["lease.new_lease_years"] > 0)
        rollover = forecast & ~new_lease & ~extended_last_year & (years_left(end, as_of) <= threshold) \
            & rollovers
        recorded = recorded_years_added(extensions, ids, year).where(~forecast, 0)
        added = recorded + new_lease.astype(int) * scenario["lease.new_lease_years"] \
            + rollover.astype(int) * scenario["lease.extension_years"]
        if added.any():  # add_years is slow; most years nobody extends
            end = add_years(end, added)
        extended = added > 0
        kind = np.select([new_lease, rollover, recorded > 0], ["new lease", "extension", "recorded"], "")
        rows.append(pd.DataFrame({"library_id": ids.to_numpy(), "year": year,
                                  "lease_end": end.to_numpy(),
                                  "lease_years_remaining": years_left(end, as_of).to_numpy(),
                                  "extended": extended.to_numpy(), "extension": kind,
                                  "fees": np.where(forecast & extended, scenario["lease.library_fees"], 0.0)}))
        extended_last_year = extended
    path = pd.concat(rows, ignore_index=True)
    path["short_of_security"] = path["lease_years_remaining"] < scenario["funders.min_lease_years"]
    return path.merge(grid[["library_id", "year"]], on=["library_id", "year"])


def security_factor(path: pd.DataFrame, base_years: pd.DataFrame, lost_share: float) -> pd.Series:
    """Each library-year's other grants as a multiple of the base, by the funders' rule.

    Funders hold back ``lost_share`` of other grants while a lease is short of their security.
    The base was earned in ``base_years`` (``library_id, year``), some of them already short,
    so only the change counts: (1 - share x short now) / (1 - share x share of base years short),
    never above 1. Prudence: grants are not forecast above what the library actually earned in
    its base years because a lease becomes secure (the accounts do not show funders paying more).

    >>> path = pd.DataFrame({"library_id": ["a", "a", "a"], "year": [1, 2, 3],
    ...                      "short_of_security": [True, True, False]})
    >>> security_factor(path, pd.DataFrame({"library_id": ["a"], "year": [1]}), 0.5).tolist()
    [1.0, 1.0, 1.0]
    >>> security_factor(path, pd.DataFrame({"library_id": ["a"], "year": [3]}), 0.5).tolist()
    [0.5, 0.5, 1.0]
    """
    short = path.set_index(["library_id", "year"])["short_of_security"].astype(float)
    in_base = short.reindex(pd.MultiIndex.from_frame(base_years[["library_id", "year"]])).groupby(level=0).mean()
    base_kept = 1.0 - lost_share * path["library_id"].map(in_base).fillna(0.0)
    now_kept = 1.0 - lost_share * path["short_of_security"].astype(float)
    factor = (now_kept / base_kept.where(base_kept > 0)).fillna(1.0).clip(upper=1.0)
    return pd.Series(factor.to_numpy(), index=path.index)


def apply_leases(lines: pd.DataFrame, grid: pd.DataFrame, scenario: Scenario, path: pd.DataFrame
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Extension fees as a cost line, and other grants times the path's ``other_grants_factor``
    (the change in lease security against the years the base was earned in: :func:`security_factor`).

    Returns the lines and the council's own fees per extension in forecast years.
    """
    lines = lines.copy()
    factor = path.set_index(["library_id", "year"])["other_grants_factor"]
    keys = pd.MultiIndex.from_frame(lines[["library_id", "year"]])
    grants = forecast_rows(lines, grid) & (lines["line"] == OTHER_GRANTS)
    lines.loc[grants, "amount"] *= factor.reindex(keys[grants.to_numpy()]).fillna(1.0).to_numpy()
    charged = path[path["fees"] > 0]
    fees = charged.assign(line=LEASE_FEES, amount=charged["fees"])[["library_id", "year", "line", "amount"]]
    council = charged.assign(component="lease_fees", amount=scenario["lease.council_fees"])
    lines = pd.concat([lines, fees], ignore_index=True)
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
