"""The contingency fund and the year-by-year roll-forward of free reserves (stage 5).

Everything that depends on last year's balance happens here, one year at a time and vectorised
over **draws x libraries**: bank interest on the opening balance, the fund's claims, and free
reserves. The fund links libraries within a year (one library's claim leaves less for the others
in that future), so the loop is over years only. The central forecast is one draw with no
shocks (:func:`roll_forward`, which turns the arrays back into frames); the simulation
(:mod:`cml.simulation`) runs the same :func:`roll` over thousands of draws.

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
EMERGENCIES = CLAIM_ORDER[:3]
CLAIM_FIELDS = ("claimed", "paid", "unmet_over_caps", "unmet_fund_empty")
CLAIM_COLUMNS = ["library_id", "year", "kind", *CLAIM_FIELDS]
LEDGER_FIELDS = ("opening", "top_ups", "payments", "closing", "unmet_over_caps", "unmet_fund_empty")
LEDGER_COLUMNS = ["year", *LEDGER_FIELDS]


@dataclass(frozen=True)
class FundRules:
    """The fund's settings for one scenario (``fund.*`` in scenarios.toml) and the bank rate."""

    opening_year: int
    opening_balance: float
    top_ups: dict[int, float]
    cap_per_claim: float
    cap_per_library: float
    pays_building_failures: bool
    pays_reserves_floor: bool
    reserves_floor_months: float
    interest_rate: float

    @classmethod
    def of(cls, scenario: Scenario, interest_rate: float) -> FundRules:
        return cls(parse_fy(scenario["fund.opening_year"]), float(scenario["fund.opening_balance"]),
                   {parse_fy(r["financial_year"]): float(r["amount"]) for r in scenario["fund.top_ups"]},
                   float(scenario["fund.cap_per_claim"]), float(scenario["fund.cap_per_library"]),
                   bool(scenario["fund.pays_building_failures"]), bool(scenario["fund.pays_reserves_floor"]),
                   float(scenario["fund.reserves_floor_months"]), float(interest_rate))


@dataclass(frozen=True)
class Flows:
    """What the roll-forward starts from, as arrays over (draws, libraries, years); a leading
    axis of 1 is shared by every draw. Years run over ``years``, libraries over ``libraries``."""

    libraries: np.ndarray  # ids, sorted
    years: np.ndarray
    ahead: np.ndarray  # (libraries, years): a forecast year of that library
    surplus: np.ndarray  # before claims and interest
    recurring: np.ndarray  # recurring spending (the months of cover and the floor are on it)
    needs: dict[str, np.ndarray]  # emergency needs by kind of EMERGENCIES
    recorded: np.ndarray  # (years,): what the accounts show the fund paid in actual years
    free_at_cut: np.ndarray  # (libraries,)
    cash_less_free: np.ndarray  # (libraries,): designated funds, which also earn interest


def months_of_cover(supported: np.ndarray, recurring: np.ndarray) -> np.ndarray:
    """Months of the year's recurring spending the supported position covers; infinite where nothing is spent.

    >>> months_of_cover(np.array([3000.0, 500.0]), np.array([12000.0, 0.0])).tolist()
    [3.0, inf]
    """
    monthly = recurring / 12.0
    return np.where(monthly > 0, supported / np.where(monthly > 0, monthly, 1.0), np.inf)


def pay_in_order(allowed: np.ndarray, supported: np.ndarray, recurring: np.ndarray, balance: np.ndarray) -> np.ndarray:
    """Pay each draw's claims from its ``balance``, fewest months of cover first (ties in
    library order), first come first served; return the amounts paid. Months of cover are
    worked out only for the draws the fund cannot pay in full, the only ones where order matters.

    >>> recurring = np.array([[120.0, 120.0, 120.0]])
    >>> pay_in_order(np.array([[30.0, 50.0, 40.0]]), np.array([[10.0, 20.0, 30.0]]), recurring, np.array([60.0])).tolist()
    [[30.0, 30.0, 0.0]]
    >>> pay_in_order(np.array([[30.0, 50.0]]), np.array([[50.0, 20.0]]), recurring[:, :2], np.array([60.0])).tolist()
    [[10.0, 50.0]]
    """
    balance = np.maximum(balance, 0.0)
    total = allowed.sum(axis=1)
    paid = np.where((total <= balance)[:, None], allowed, 0.0).astype(allowed.dtype, copy=False)
    short = (total > balance) & (balance > 0)  # order matters only where the fund can pay some but not all
    if short.any():
        order = np.argsort(months_of_cover(supported[short], recurring[short]), axis=1, kind="stable")
        wanted = np.take_along_axis(allowed[short], order, axis=1)
        before = np.cumsum(wanted, axis=1) - wanted
        got = np.clip(balance[short, None] - before, 0.0, wanted)
        sorted_back = np.empty_like(got)
        np.put_along_axis(sorted_back, order, got, axis=1)
        paid[short] = sorted_back
    return paid


def within_cap(claimed: np.ndarray, cap_left: np.ndarray, cap_per_claim: float) -> np.ndarray:
    """What of each claim the caps allow: at most ``cap_per_claim``, and no more than the
    library's cap has left.

    >>> within_cap(np.array([8.0, 5.0, 3.0]), np.array([10.0, 4.0, 10.0]), 6.0).tolist()
    [6.0, 4.0, 3.0]
    """
    return np.clip(cap_left, 0.0, np.minimum(claimed, cap_per_claim))


def where_ahead(ahead: np.ndarray, value: np.ndarray, other: float | np.ndarray) -> np.ndarray:
    """``np.where(ahead, value, other)``: ``value`` itself where every library is in a forecast
    year, as in most years, which saves a pass over draws x libraries (and gives the same figures).

    >>> where_ahead(np.array([True, False]), np.array([1.0, 2.0]), 0.0).tolist()
    [1.0, 0.0]
    """
    return value if ahead.all() else np.where(ahead, value, other)


def interest_on(opening_cash: np.ndarray, rate: float) -> np.ndarray:
    """Bank interest on a year's opening cash; nothing on a balance of nil or below.

    >>> interest_on(np.array([1000.0, -50.0]), 0.02).tolist()
    [20.0, 0.0]
    """
    return np.maximum(opening_cash, 0.0) * rate


@dataclass
class Rolled:
    """The roll-forward's results: every array is (draws, libraries, years) unless named; those
    not asked for (``keep``) are None."""

    free_reserves: np.ndarray | None  # the library's own position at each year end (forecast years)
    interest: np.ndarray | None
    top_ups_to_date: np.ndarray | None
    claims: dict[str, dict[str, np.ndarray]] | None  # kind -> field -> array
    ledger: dict[str, np.ndarray]  # field -> (draws, years); NaN before the fund opens


def roll(flows: Flows, rules: FundRules, draws: int, keep: frozenset[str] = frozenset({"free_reserves"}),
         dtype: type = np.float64) -> Rolled:
    """Run interest and the fund through the years for ``draws`` futures at once.

    Each forecast year: interest on the opening cash; the year's surplus; then, once the fund is
    open, the claims in :data:`CLAIM_ORDER` from libraries still open (free reserves, after
    top-ups, not below nil at the start of the year), capped, then paid fewest months of cover
    first while the fund lasts. The reserves-floor claim is worked out after the emergencies, on
    the supported position, so a library is topped up only to the floor; what was left unpaid
    last year is not claimed again, so need is never counted twice.
    """
    n_lib, n_year = flows.ahead.shape
    shape = (draws, n_lib)
    own = np.broadcast_to(flows.free_at_cut, shape).astype(dtype)
    topped = np.zeros(shape, dtype)
    drawn = np.zeros(shape, dtype)  # paid against each library's cap so far
    floor_unmet = np.zeros(shape, dtype)
    balance = np.full(draws, rules.opening_balance)
    def by_year(fill: float) -> np.ndarray:  # (draws, libraries, years), each year one contiguous block
        return np.moveaxis(np.full((n_year, draws, n_lib), fill, dtype), 0, -1)

    out = {name: by_year(np.nan) for name in ("free_reserves", "interest", "top_ups_to_date") if name in keep}
    claims = ({kind: {f: by_year(0.0) for f in CLAIM_FIELDS} for kind in CLAIM_ORDER} if "claims" in keep else None)
    ledger = {f: np.full((draws, n_year), np.nan) for f in LEDGER_FIELDS}
    kinds = [k for k in EMERGENCIES if k != "building_failure" or rules.pays_building_failures]
    for j, year in enumerate(flows.years):
        ahead = flows.ahead[:, j]
        if not ahead.any():  # every library in its accounts: only the fund's own ledger moves
            if year >= rules.opening_year:
                top_up, paid_before = rules.top_ups.get(int(year), 0.0), float(flows.recorded[j])
                ledger["opening"][:, j], ledger["top_ups"][:, j] = balance, top_up
                balance = balance + top_up - paid_before
                ledger["payments"][:, j], ledger["closing"][:, j] = paid_before, balance
                ledger["unmet_over_caps"][:, j] = ledger["unmet_fund_empty"][:, j] = 0.0
            continue
        interest = where_ahead(ahead, interest_on(own + flows.cash_less_free, rules.interest_rate), 0.0)
        own_before = own + where_ahead(ahead, flows.surplus[..., j] + interest, 0.0)
        if year >= rules.opening_year:
            top_up, paid_before = rules.top_ups.get(int(year), 0.0), float(flows.recorded[j])
            ledger["opening"][:, j], ledger["top_ups"][:, j] = balance, top_up
            balance = balance + top_up - paid_before
            open_now = ahead & (own + topped >= 0)
            recurring = np.broadcast_to(flows.recurring[..., j], shape)
            supported = own_before + topped
            cap_left = np.maximum(rules.cap_per_library - drawn, 0.0)
            paid_emergency = np.zeros(shape, dtype)
            year_claims = {}
            for kind in kinds:
                if kind not in flows.needs or not flows.needs[kind][..., j].any():
                    continue  # most years bring no claim of most kinds
                claimed = np.where(open_now, flows.needs[kind][..., j], 0.0)
                allowed = claimed if kind == "programme" else within_cap(claimed, cap_left, rules.cap_per_claim)
                if kind != "programme":
                    cap_left = cap_left - allowed
                paid = pay_in_order(allowed, supported, recurring, balance)
                balance = balance - paid.sum(axis=1)
                paid_emergency += paid
                year_claims[kind] = (claimed, allowed, paid)
            if rules.pays_reserves_floor:
                floor = rules.reserves_floor_months * np.maximum(recurring / 12.0, 0.0)
                claimed = np.where(open_now, np.maximum(floor - supported - paid_emergency - floor_unmet, 0.0), 0.0)
                allowed = within_cap(claimed, cap_left, rules.cap_per_claim)
                paid = pay_in_order(allowed, supported, recurring, balance)
                balance = balance - paid.sum(axis=1)
                year_claims[DISCRETIONARY] = (claimed, allowed, paid)
                floor_unmet = claimed - paid
                topped = topped + paid
            for kind, (claimed, allowed, paid) in year_claims.items():
                if kind != "programme":
                    drawn = drawn + paid
                if claims is not None:
                    for name, value in zip(CLAIM_FIELDS, (claimed, paid, claimed - allowed, allowed - paid)):
                        claims[kind][name][..., j] = value
            parts = list(year_claims.values())
            ledger["payments"][:, j] = paid_before + sum(p.sum(axis=1) for _, _, p in parts)
            ledger["closing"][:, j] = balance
            ledger["unmet_over_caps"][:, j] = sum((c - a).sum(axis=1) for c, a, _ in parts)
            ledger["unmet_fund_empty"][:, j] = sum((a - p).sum(axis=1) for _, a, p in parts)
            own_before = own_before + paid_emergency
        own = where_ahead(ahead, own_before, own)
        for name, value in (("free_reserves", own), ("interest", interest), ("top_ups_to_date", topped)):
            if name in out:
                out[name][..., j] = where_ahead(ahead, value, np.nan)
    return Rolled(out.get("free_reserves"), out.get("interest"), out.get("top_ups_to_date"), claims, ledger)


# ---------------------------------------------------------------------------------------------
# The central forecast: one draw, as frames


@dataclass(frozen=True)
class RollForward:
    """What the year loop gives the projection: the fund's claims and ledger, and interest per library-year."""

    claims: pd.DataFrame
    ledger: pd.DataFrame
    interest: pd.DataFrame  # library_id, year, amount (forecast years only)
    free_reserves: pd.DataFrame  # library_id, year, free_reserves: the roll's own figure, which the checks compare


def library_year_array(frame: pd.DataFrame, column: str, libraries: np.ndarray, years: np.ndarray) -> np.ndarray:
    """A (libraries, years) array of ``column`` summed by library and year (nil where absent)."""
    table = frame.pivot_table(index="library_id", columns="year", values=column, aggfunc="sum")
    return table.reindex(index=libraries, columns=years).fillna(0.0).to_numpy(dtype=float)


def central_flows(totals: pd.DataFrame, needs: pd.DataFrame, recorded: pd.Series, free_at_cut: pd.Series,
                  cash_less_free: pd.Series, years: list[int]) -> Flows:
    """The arrays of one future (no shocks) from the projection's frames.

    ``totals`` has ``library_id, year, actual_or_forecast, surplus, recurring_spending`` before any
    claim and before interest; ``needs`` the emergencies and programme grants of forecast years
    (``library_id, year, kind, amount``); ``recorded`` what the accounts show the fund paid in
    actual years, by year; ``free_at_cut`` each library's free reserves at its last actual year;
    ``cash_less_free`` its designated funds, constant in forecast years.
    """
    libraries = np.asarray(sorted(free_at_cut.index))
    year_axis = np.asarray(years)
    ahead = totals.assign(ahead=(totals["actual_or_forecast"] == "forecast").astype(float))
    return Flows(
        libraries=libraries, years=year_axis,
        ahead=library_year_array(ahead, "ahead", libraries, year_axis) > 0,
        surplus=library_year_array(totals, "surplus", libraries, year_axis)[None],
        recurring=library_year_array(totals, "recurring_spending", libraries, year_axis)[None],
        needs={kind: library_year_array(rows, "amount", libraries, year_axis)[None]
               for kind, rows in needs.groupby("kind")},
        recorded=recorded.reindex(year_axis, fill_value=0.0).to_numpy(dtype=float),
        free_at_cut=free_at_cut.reindex(libraries).to_numpy(dtype=float),
        cash_less_free=cash_less_free.reindex(libraries).to_numpy(dtype=float),
    )


def _library_years(array: np.ndarray, flows: Flows, name: str) -> pd.DataFrame:
    """The forecast cells of a (libraries, years) array as ``library_id, year, <name>`` rows."""
    lib, yr = np.nonzero(flows.ahead)
    return pd.DataFrame({"library_id": flows.libraries[lib], "year": flows.years[yr], name: array[lib, yr]})


def roll_forward(flows: Flows, rules: FundRules) -> RollForward:
    """The central forecast: :func:`roll` over one draw, turned into the projection's frames."""
    rolled = roll(flows, rules, 1, keep=frozenset({"free_reserves", "interest", "claims"}))
    parts = []
    for kind in CLAIM_ORDER:
        fields = rolled.claims[kind]
        lib, yr = np.nonzero(fields["claimed"][0] > 0)
        if len(lib):
            parts.append(pd.DataFrame({"library_id": flows.libraries[lib], "year": flows.years[yr], "kind": kind}
                                      | {f: fields[f][0, lib, yr] for f in CLAIM_FIELDS}))
    claims = pd.concat([pd.DataFrame(columns=CLAIM_COLUMNS), *parts], ignore_index=True)[CLAIM_COLUMNS]
    claims = claims.astype({"year": int} | {c: float for c in CLAIM_FIELDS}).sort_values(
        ["year", "kind", "library_id"], key=lambda c: c.map(CLAIM_ORDER.index) if c.name == "kind" else c,
        ignore_index=True)
    opened = ~np.isnan(rolled.ledger["closing"][0])
    ledger = pd.DataFrame({"year": flows.years[opened]} | {f: rolled.ledger[f][0, opened] for f in LEDGER_FIELDS})
    return RollForward(claims, ledger[LEDGER_COLUMNS], _library_years(rolled.interest[0], flows, "amount"),
                       _library_years(rolled.free_reserves[0], flows, "free_reserves"))
