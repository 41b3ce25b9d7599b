"""Named reconciliation checks run on every forecast (FAST/ICAEW style: one rule per period,
balance corkscrews, totals that tie). A failure stops the run: a figure that does not reconcile
must never reach a committee paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cml.inputs import Inputs
    from cml.projection import Forecast


@dataclass(frozen=True)
class CheckResult:
    """One named check: whether it passed and the largest difference it found, in pounds."""

    name: str
    passed: bool
    largest_difference: float
    description: str


class ModelCheckFailed(Exception):
    """A reconciliation check failed: a bug in cml or its inputs, never a user's typo."""


def _result(name: str, differences: pd.Series, tolerance: float, description: str) -> CheckResult:
    """A check fails on any difference over the tolerance, and on any figure that is not finite
    (NaN or infinity would otherwise slip past a comparison)."""
    values = differences.to_numpy(dtype=float)
    finite = bool(np.isfinite(values).all())
    largest = float(np.abs(values).max()) if len(values) and finite else (0.0 if finite else float("inf"))
    return CheckResult(name, finite and largest <= tolerance, round(largest, 6), description)


def reserves_corkscrew(projection: pd.DataFrame) -> pd.Series:
    """Closing = opening + income - expenditure, and each opening = the year before's closing."""
    flow = projection["closing_reserves"] - (projection["opening_reserves"] + projection["income"] - projection["expenditure"])
    keys = ["scenario", "library_id"]
    carried = projection["opening_reserves"] - projection.groupby(keys)["closing_reserves"].shift()
    return pd.concat([flow, carried.dropna()])


def lines_tie_to_totals(projection: pd.DataFrame, lines: pd.DataFrame) -> pd.Series:
    """Income (with any discretionary fund top-ups, which the projection keeps apart) and
    expenditure in the projection equal the sum of their lines."""
    keys = ["scenario", "library_id", "year"]
    by_side = lines.pivot_table(index=keys, columns="side", values="amount", aggfunc="sum", fill_value=0.0)
    by_side = by_side.reindex(columns=["income", "expenditure"], fill_value=0.0).add_suffix("_lines")
    joined = projection.set_index(keys)[["income", "fund_top_ups", "expenditure"]].join(by_side).fillna(0.0)
    return pd.concat([joined["income"] + joined["fund_top_ups"] - joined["income_lines"],
                      joined["expenditure"] - joined["expenditure_lines"]])


def portfolio_is_sum_of_libraries(projection: pd.DataFrame, portfolio: pd.DataFrame) -> pd.Series:
    """Each portfolio money column equals the sum of the libraries' rows for that year."""
    columns = ["council_grant", "income", "expenditure", "closing_reserves", "free_reserves"]
    sums = projection.groupby(["scenario", "year"])[columns].sum()
    reported = portfolio.set_index(["scenario", "year"])[columns]
    counted = portfolio.filter(like="libraries_").sum(axis=1).to_numpy() - projection.groupby(["scenario", "year"]).size().to_numpy()
    return pd.concat([(reported - sums).stack(), pd.Series(counted, dtype=float)])


def grant_schedule_is_taper_award(forecast: Forecast, inputs: Inputs) -> pd.Series:
    """Each library's scheduled grant over all years equals running costs x the taper's total."""
    award = inputs.libraries.set_index("library_id")["original_running_costs"] * inputs.taper["percent_of_running_costs"].sum() / 100
    scheduled = forecast.grant_schedule.groupby("library_id")["council_grant"].sum()
    return (scheduled - award).dropna()


def fund_ledger(fund: pd.DataFrame) -> pd.Series:
    """Contingency fund: opening + top-ups - payments = closing; next opening = this closing."""
    flow = fund["closing"] - (fund["opening"] + fund["top_ups"] - fund["payments"])
    carried = fund["opening"] - fund.groupby("scenario")["closing"].shift()
    return pd.concat([flow, carried.dropna()])


def fund_claims_add_up(claims: pd.DataFrame) -> pd.Series:
    """Every claim: paid + unmet over the caps + unmet for want of money = claimed, none negative."""
    parts = claims[["paid", "unmet_over_caps", "unmet_fund_empty"]]
    return pd.concat([claims["claimed"] - parts.sum(axis=1), parts.clip(upper=0.0).stack()])


def run_checks(forecast: Forecast, inputs: Inputs) -> list[CheckResult]:
    """Every named check, with the tolerance from ``assumptions.toml``."""
    tolerance = inputs.assumptions.tolerance_pounds
    return [
        _result("reserves_corkscrew", reserves_corkscrew(forecast.projection), tolerance,
                "closing reserves = opening + income - expenditure; opening = last year's closing"),
        _result("lines_tie_to_totals", lines_tie_to_totals(forecast.projection, forecast.lines), tolerance,
                "income and expenditure equal the sum of their lines"),
        _result("portfolio_is_sum_of_libraries", portfolio_is_sum_of_libraries(forecast.projection, forecast.portfolio),
                tolerance, "portfolio totals and RAG counts equal the sum over libraries"),
        _result("grant_schedule_is_taper_award", grant_schedule_is_taper_award(forecast, inputs), tolerance,
                "each library's grant over all years = original running costs x sum of taper percentages"),
        _result("fund_ledger", fund_ledger(forecast.fund), tolerance,
                "contingency fund: opening + top-ups - payments = closing, carried forward"),
        _result("fund_claims_add_up", fund_claims_add_up(forecast.claims), tolerance,
                "each fund claim: paid + unmet over the caps + unmet for want of money = claimed"),
    ]


def assert_reconciles(forecast: Forecast, inputs: Inputs) -> list[CheckResult]:
    """Run every check; raise :class:`ModelCheckFailed` naming each one that fails."""
    results = run_checks(forecast, inputs)
    failed = [r for r in results if not r.passed]
    if failed:
        raise ModelCheckFailed("; ".join(f"{r.name} failed by £{r.largest_difference:,.2f} ({r.description})" for r in failed))
    return results
