"""The contingency fund: one pool for all libraries, simulated year by year (stage 5).

Each forecast year, claims are met in this order until the fund runs dry:

1. programme grants the council has decided (``contingency_grant`` rows already in the lines,
   e.g. the 2020/21 one-off 20% when forecasting from 2019/20);
2. building failures in libraries that carry their own fabric (roof, boiler: seed 000 para 15),
   up to ``cap_per_claim``;
3. libraries whose free reserves would fall below ``reserves_floor_months`` of expenditure, the
   most exposed (fewest months of cover) first, up to the shortfall and ``cap_per_claim``.

No library receives more than ``cap_per_library`` in all. What the fund cannot pay is recorded as
unmet. In actual years the ledger records what the accounts show was paid. The ledger
reconciles: opening + top-ups - payments = closing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cml.fy import parse_fy
from cml.inputs import BUILDING_FAILURE, CONTINGENCY_GRANT
from cml.scenarios import Scenario

CLAIM_ORDER = {"programme": 0, "building_failure": 1, "reserves_floor": 2}


def pay_in_order(claims: pd.DataFrame, balance: float) -> pd.Series:
    """Pay claims (already sorted) from ``balance`` first come, first served; return the amounts paid.

    >>> pay_in_order(pd.DataFrame({"claimed": [30.0, 50.0, 40.0]}), 60.0).tolist()
    [30.0, 30.0, 0.0]
    """
    before = claims["claimed"].cumsum() - claims["claimed"]
    return (balance - before).clip(lower=0.0).clip(upper=claims["claimed"])


def within_cap(claims: pd.DataFrame, cap_left: pd.Series) -> pd.Series:
    """Trim each library's claims, in order, so together they stay within what its cap has left.

    >>> within_cap(pd.DataFrame({"library_id": ["a", "a", "b"], "claimed": [8.0, 5.0, 3.0]}),
    ...            pd.Series({"a": 10.0, "b": 10.0})).tolist()
    [8.0, 2.0, 3.0]
    """
    left = claims["library_id"].map(cap_left).fillna(0.0)
    before = claims.groupby("library_id")["claimed"].cumsum() - claims["claimed"]
    return (left - before).clip(lower=0.0).clip(upper=claims["claimed"])


def simulate_fund(totals: pd.DataFrame, lines: pd.DataFrame, free_at_cut: pd.Series, scenario: Scenario,
                  years: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the fund through the years; return (claims, ledger).

    ``totals`` has ``library_id, year, actual_or_forecast, surplus, expenditure`` before any claim;
    ``lines`` gives programme grants and building failures; ``free_at_cut`` each library's free
    reserves at its last actual year.
    """
    opening_year = parse_fy(scenario["fund.opening_year"])
    top_ups = {parse_fy(r["financial_year"]): float(r["amount"]) for r in scenario["fund.top_ups"]}
    cap_claim, cap_library = scenario["fund.cap_per_claim"], scenario["fund.cap_per_library"]
    floor_months = scenario["fund.reserves_floor_months"]
    drawn = pd.Series(0.0, index=free_at_cut.index)
    free = free_at_cut.copy()
    balance = scenario["fund.opening_balance"]
    claims_out, ledger = [], []
    totals_by_year = {year: rows.set_index("library_id") for year, rows in totals.groupby("year")}
    fund_lines = lines[lines["line"].isin([CONTINGENCY_GRANT, BUILDING_FAILURE])]
    lines_by_year = {year: rows for year, rows in fund_lines.groupby("year")}
    no_lines = fund_lines.iloc[:0]
    for year in years:
        rows = totals_by_year[year]
        actual = rows["actual_or_forecast"] == "actual"
        forecast_rows = rows[~actual]
        free_before = free.reindex(forecast_rows.index) + forecast_rows["surplus"]
        if year < opening_year:  # deficits before the fund opens still run reserves down
            free = free_before.combine_first(free)
            continue
        in_year = lines_by_year.get(year, no_lines)
        paid_in_accounts = in_year[in_year["line"] == CONTINGENCY_GRANT].groupby("library_id")["amount"].sum()
        recorded = float(paid_in_accounts.reindex(rows.index[actual], fill_value=0.0).sum())
        opening, balance = balance, balance + top_ups.get(year, 0.0) - recorded
        claims = _claims(forecast_rows, in_year, free_before, floor_months, cap_claim, scenario)
        claims = claims[claims["claimed"] > 0].sort_values(["order", "months_of_cover", "library_id"])
        claims["claimed"] = within_cap(claims, (cap_library - drawn).clip(lower=0.0))
        claims = claims[claims["claimed"] > 0]
        claims["paid"] = pay_in_order(claims, max(balance, 0.0))
        claims["unmet"] = claims["claimed"] - claims["paid"]
        claims["year"] = year
        paid_by_library = claims.groupby("library_id")["paid"].sum()
        drawn = drawn.add(paid_by_library, fill_value=0.0)
        free = (free_before + paid_by_library.reindex(forecast_rows.index, fill_value=0.0)).combine_first(free)
        balance -= float(claims["paid"].sum())
        claims_out.append(claims)
        ledger.append({"year": year, "opening": opening, "top_ups": top_ups.get(year, 0.0),
                       "payments": recorded + float(claims["paid"].sum()), "closing": balance,
                       "unmet": float(claims["unmet"].sum())})
    columns = ["library_id", "year", "kind", "claimed", "paid", "unmet"]
    claims_frame = pd.concat([pd.DataFrame(columns=columns), *claims_out], ignore_index=True)[columns]
    claims_frame = claims_frame.astype({"year": int, "claimed": float, "paid": float, "unmet": float})
    return claims_frame, pd.DataFrame(ledger, columns=["year", "opening", "top_ups", "payments", "closing", "unmet"])


def _claims(rows: pd.DataFrame, in_year: pd.DataFrame, free_before: pd.Series, floor_months: float,
            cap_claim: float, scenario: Scenario) -> pd.DataFrame:
    """This year's claims, one row per library and kind, before the fund's balance is applied."""
    months = free_before / (rows["expenditure"] / 12.0).where(rows["expenditure"] > 0)
    ids = rows.index
    in_forecast = in_year[in_year["library_id"].isin(ids)]
    programme = in_forecast[in_forecast["line"] == CONTINGENCY_GRANT].groupby("library_id")["amount"].sum()
    failures = in_forecast[in_forecast["line"] == BUILDING_FAILURE].groupby("library_id")["amount"].sum()
    failures = failures.clip(upper=cap_claim) if scenario["fund.pays_building_failures"] else failures * 0.0
    floor = (floor_months * rows["expenditure"] / 12.0 - free_before - failures.reindex(ids, fill_value=0.0)).clip(lower=0.0)
    parts = [
        pd.DataFrame({"library_id": programme.index, "kind": "programme", "claimed": programme.to_numpy()}),
        pd.DataFrame({"library_id": failures.index, "kind": "building_failure", "claimed": failures.to_numpy()}),
        pd.DataFrame({"library_id": ids, "kind": "reserves_floor", "claimed": floor.clip(upper=cap_claim).to_numpy()}),
    ]
    claims = pd.concat(parts, ignore_index=True).astype({"claimed": float})
    claims["order"] = claims["kind"].map(CLAIM_ORDER)
    claims["months_of_cover"] = claims["library_id"].map(months).fillna(np.inf)
    return claims
