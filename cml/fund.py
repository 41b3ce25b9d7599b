"""The contingency fund and the year-by-year roll-forward of free reserves (stage 5).

Everything that depends on last year's balance happens here, one year at a time and vectorised
across libraries: bank interest on the opening balance, the fund's claims, and free reserves.

The fund is for emergencies (seed 000 para 15). Each forecast year its claims are met in this
order until it runs dry:

1. ``programme`` - grants the council has decided (``contingency_grant`` rows in the lines,
   e.g. the 2020/21 one-off 20% when forecasting from 2019/20). A council decision, not a
   claim: never limited by the caps and never counted against a library's cap;
2. ``building_failure`` - a roof or boiler failure in a library that carries its own fabric;
3. ``income_cut`` - a council decision that cuts a library's income (a children's centre in the
   building closing);
4. ``reserves_floor`` - only where the scenario says the fund also tops libraries up
   (``fund.pays_reserves_floor``): libraries whose free reserves would fall below
   ``reserves_floor_months`` of recurring spending, the fewest months of cover first.

Within each kind, the library with the fewest months of cover is paid first. Emergency and
top-up claims are limited to ``cap_per_claim`` each and ``cap_per_library`` in all. The whole
need is recorded: what the caps leave unpaid is ``unmet_over_caps``, what the empty fund leaves
unpaid is ``unmet_fund_empty``.

Two positions are kept. The library's **own** position includes emergency and programme money
(the council would pay it) but not discretionary top-ups; the RAG and run-out year are read from
it. The **supported** position adds the top-ups. Interest is earned on the own position's
opening cash, so the supported position is the own one plus the top-ups paid to date, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cml.fy import parse_fy
from cml.scenarios import Scenario

CLAIM_ORDER = ("programme", "building_failure", "income_cut", "reserves_floor")
DISCRETIONARY = "reserves_floor"  # the one kind that is support, not an emergency
CLAIM_COLUMNS = ["library_id", "year", "kind", "claimed", "paid", "unmet_over_caps", "unmet_fund_empty"]
LEDGER_COLUMNS = ["year", "opening", "top_ups", "payments", "closing", "unmet_over_caps", "unmet_fund_empty"]


@dataclass(frozen=True)
class RollForward:
    """What the year loop gives: the fund's claims and ledger, and interest per library-year."""

    claims: pd.DataFrame
    ledger: pd.DataFrame
    interest: pd.DataFrame  # library_id, year, amount (forecast years only)


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


def interest_on(opening_cash: pd.Series, rate: float) -> pd.Series:
    """Bank interest on a year's opening cash; nothing on a balance of nil or below.

    >>> interest_on(pd.Series([1000.0, -50.0]), 0.02).tolist()
    [20.0, 0.0]
    """
    return opening_cash.clip(lower=0.0) * rate


def roll_forward(totals: pd.DataFrame, needs: pd.DataFrame, recorded: pd.Series, free_at_cut: pd.Series,
                 cash_less_free: pd.Series, scenario: Scenario, years: list[int], interest_rate: float) -> RollForward:
    """Run interest and the fund through the years.

    ``totals`` has ``library_id, year, actual_or_forecast, surplus, recurring_spending`` before any
    claim and before interest; ``needs`` the emergencies and programme grants of forecast years
    (``library_id, year, kind, amount``, kinds of :data:`CLAIM_ORDER`); ``recorded`` what the
    accounts show the fund paid in actual years, by year; ``free_at_cut`` each library's free
    reserves at its last actual year; ``cash_less_free`` what its cash holds beyond free reserves
    (designated and restricted funds), constant in forecast years.
    """
    opening_year = parse_fy(scenario["fund.opening_year"])
    top_ups = {parse_fy(r["financial_year"]): float(r["amount"]) for r in scenario["fund.top_ups"]}
    drawn = pd.Series(0.0, index=free_at_cut.index)
    own = free_at_cut.copy()  # own free reserves at the end of the last year rolled
    topped = pd.Series(0.0, index=free_at_cut.index)  # discretionary top-ups paid to date
    floor_unmet = pd.Series(0.0, index=free_at_cut.index)  # last year's top-up need left unpaid
    balance = float(scenario["fund.opening_balance"])
    claims_out, ledger, interest_out = [], [], []
    totals_by_year = {year: rows.set_index("library_id") for year, rows in totals.groupby("year")}
    needs_by_year = {year: rows for year, rows in needs.groupby("year")}
    no_needs = needs.iloc[:0]
    for year in years:
        rows = totals_by_year[year]
        actual = rows["actual_or_forecast"] == "actual"
        ahead = rows[~actual]
        interest = interest_on(own.reindex(ahead.index) + cash_less_free.reindex(ahead.index), interest_rate)
        interest_out.append(pd.DataFrame({"library_id": ahead.index, "year": year, "amount": interest.to_numpy()}))
        own_before = own.reindex(ahead.index) + ahead["surplus"] + interest
        if year < opening_year:  # deficits before the fund opens still run reserves down
            own = own_before.combine_first(own)
            continue
        paid_before = float(recorded.get(year, 0.0))
        opening, balance = balance, balance + top_ups.get(year, 0.0) - paid_before
        in_year = needs_by_year.get(year, no_needs)
        open_now = ahead.index[(own.reindex(ahead.index) + topped.reindex(ahead.index, fill_value=0.0)) >= 0]
        claims, balance = _meet_claims(ahead.loc[open_now], in_year[in_year["library_id"].isin(open_now)],
                                       own_before.loc[open_now], topped, drawn, floor_unmet, balance, scenario)
        floor = claims[claims["kind"] == DISCRETIONARY].set_index("library_id")
        floor_unmet = (floor["unmet_over_caps"] + floor["unmet_fund_empty"]).reindex(floor_unmet.index, fill_value=0.0)
        claims["year"] = year
        capped = claims[claims["kind"] != "programme"]
        drawn = drawn.add(capped.groupby("library_id")["paid"].sum(), fill_value=0.0)
        emergency = claims[claims["kind"] != DISCRETIONARY].groupby("library_id")["paid"].sum()
        discretionary = claims[claims["kind"] == DISCRETIONARY].groupby("library_id")["paid"].sum()
        own = (own_before + emergency.reindex(ahead.index, fill_value=0.0)).combine_first(own)
        topped = topped.add(discretionary, fill_value=0.0)
        claims_out.append(claims)
        ledger.append({"year": year, "opening": opening, "top_ups": top_ups.get(year, 0.0),
                       "payments": paid_before + float(claims["paid"].sum()), "closing": balance,
                       "unmet_over_caps": float(claims["unmet_over_caps"].sum()),
                       "unmet_fund_empty": float(claims["unmet_fund_empty"].sum())})
    claims_frame = pd.concat([pd.DataFrame(columns=CLAIM_COLUMNS), *claims_out], ignore_index=True)[CLAIM_COLUMNS]
    claims_frame = claims_frame.astype({"year": int} | {c: float for c in CLAIM_COLUMNS[3:]})
    interest_frame = pd.concat(interest_out, ignore_index=True) if interest_out else pd.DataFrame(
        columns=["library_id", "year", "amount"])
    return RollForward(claims_frame, pd.DataFrame(ledger, columns=LEDGER_COLUMNS), interest_frame)


def _meet_claims(rows: pd.DataFrame, needs: pd.DataFrame, own_before: pd.Series, topped: pd.Series,
                 drawn: pd.Series, floor_unmet: pd.Series, balance: float, scenario: Scenario
                 ) -> tuple[pd.DataFrame, float]:
    """This year's claims in order of kind and need: capped, then paid while the fund lasts.

    ``rows`` are the libraries still open (free reserves, after top-ups, not below nil at the
    start of the year): a library that has run out has closed and claims nothing more. The
    reserves-floor claim is worked out after the emergencies are paid, on the supported position
    (own free reserves plus top-ups to date), so a library is topped up only to the floor; what
    was left unpaid last year is not claimed again, so need is never counted twice.
    """
    cap_claim, cap_library = scenario["fund.cap_per_claim"], scenario["fund.cap_per_library"]
    monthly = (rows["recurring_spending"] / 12.0).where(rows["recurring_spending"] > 0)
    supported = own_before + topped.reindex(rows.index, fill_value=0.0)
    months = (supported / monthly).fillna(np.inf)
    kinds = [k for k in CLAIM_ORDER[:3] if k != "building_failure" or scenario["fund.pays_building_failures"]]
    emergencies = {kind: needs[needs["kind"] == kind].groupby("library_id")["amount"].sum() for kind in kinds}
    claims, balance = _pay(emergencies, months, drawn, cap_claim, cap_library, balance)
    if scenario["fund.pays_reserves_floor"]:
        paid_now = claims.groupby("library_id")["paid"].sum().reindex(rows.index, fill_value=0.0)
        floor = scenario["fund.reserves_floor_months"] * monthly.fillna(0.0)
        shortfall = (floor - supported - paid_now - floor_unmet.reindex(rows.index, fill_value=0.0)).clip(lower=0.0)
        drawn_now = drawn.add(claims[claims["kind"] != "programme"].groupby("library_id")["paid"].sum(), fill_value=0.0)
        top_up, balance = _pay({DISCRETIONARY: shortfall[shortfall > 0]}, months, drawn_now, cap_claim, cap_library,
                               balance)
        claims = pd.concat([claims, top_up], ignore_index=True)
    return claims, balance


def _pay(needs: dict[str, pd.Series], months: pd.Series, drawn: pd.Series, cap_claim: float, cap_library: float,
         balance: float) -> tuple[pd.DataFrame, float]:
    """Claims of the given kinds, in :data:`CLAIM_ORDER` then fewest months of cover first."""
    parts = [pd.DataFrame({"library_id": amounts.index, "kind": kind, "claimed": amounts.to_numpy(dtype=float)})
             for kind, amounts in needs.items() if len(amounts)]
    if not parts:  # most years have no claim at all: skip the sorting and capping
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("library_id", "kind") else float)
                             for c in CLAIM_COLUMNS if c != "year"}), balance
    claims = pd.concat(parts, ignore_index=True)
    claims = claims[claims["claimed"] > 0].astype({"claimed": float})
    claims["order"] = claims["kind"].map(CLAIM_ORDER.index)
    claims["months_of_cover"] = claims["library_id"].map(months).fillna(np.inf)
    claims = claims.sort_values(["order", "months_of_cover", "library_id"], ignore_index=True)
    capped = claims["kind"] != "programme"
    allowed = claims["claimed"].copy()
    allowed[capped] = within_cap(claims[capped].assign(claimed=claims.loc[capped, "claimed"].clip(upper=cap_claim)),
                                 (cap_library - drawn).clip(lower=0.0))
    claims["paid"] = pay_in_order(claims.assign(claimed=allowed), max(balance, 0.0))
    claims["unmet_over_caps"] = claims["claimed"] - allowed
    claims["unmet_fund_empty"] = allowed - claims["paid"]
    return claims[["library_id", "kind", "claimed", "paid", "unmet_over_caps", "unmet_fund_empty"]], \
        balance - float(claims["paid"].sum())
