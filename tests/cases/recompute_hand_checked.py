"""Recompute the hand-checked 2024/25 baseline figures in ``hand_checked.toml`` from the CSVs alone.

A plain pandas script that does the arithmetic the toml's comment describes, independently of cml's
code (it imports nothing from ``cml``), so that the figures the tests pin are checked by a second,
simple route. It reads ``inputs/accounts.csv``, ``reserves.csv``, ``lines.csv``, ``libraries.csv``
and ``lease_extensions.csv`` and prints each library's working and a ``[[case]]`` block to paste.

The rules (the shipped settings, written out here rather than read from cml's files):

* each trend line starts from its 2023/24 actual (one base year; 2023/24 is a normal year), except
  the lines with ``base_years`` in lines.csv (other grants, building fabric repairs): the mean of
  the latest 3 normal full years (2020/21 and 2021/22 are abnormal), each restated to 2023/24 prices
  at its side's growth rate; a line the library did not report in a base year counts as nil there;
* the base grows a year: costs +3% (2024/25's dated rate; past years restated at their own dated
  rates, assumptions.toml ``[growth.costs_by_year]``), income +``--income-growth`` (default 1%), except the
  self-generated lines forecast as ``fitted``, which grow at the library's own growth from the
  pooled statsmodels fit: ``exp(income_growth)`` a year, ``income_growth`` read from the run's
  ``fits.csv`` (``--fits``; the fit itself is statsmodels', so here it is an input and what is
  checked is the arithmetic from it);
* cost of café sales at the library's own 2023/24 share of café sales;
* bank interest 1.5% on opening unrestricted cash at 31 March 2024 (free reserves + designated
  funds = unrestricted less fixed assets; restricted funds keep their own interest);
* funders' rule: other grants x (1 - 0.5 x short now) / (1 - 0.5 x share of the 3 base years
  short), never above 1, where "short" is a lease with under 10 years left at the year end;
* lease rule: a lease with 7 years or less left at 31 March 2025, not extended in 2023/24, gains 5
  years and the library pays £2,000 of fees in 2024/25 (a one-off: not in months of cover);
* closing = 2023/24 total funds (unrestricted + restricted) + income - expenditure; free = closing
  less restricted, designated and fixed assets (held at their 2023/24 values); months of cover =
  free / (spending without one-off fees / 12).

Run from the repository root after ``cml forecast --no-pdf``:
``python tests/cases/recompute_hand_checked.py --fits outputs/fits.csv [--income-growth 0.01]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
BASE_YEAR = 2023  # 2023/24, the last actual year
YEAR = 2024  # 2024/25, the year checked
ABNORMAL = {2020, 2021}
# Cost inflation into each year (assumptions.toml [growth.costs_by_year]); 2.5% where not dated.
COST_INFLATION = {2016: 0.020, 2017: 0.030, 2018: 0.025, 2019: 0.020, 2020: 0.015, 2021: 0.020, 2022: 0.030,
                  2023: 0.020, 2024: 0.030, 2025: 0.035}
INTEREST_RATE = 0.015
FUNDERS_MIN_YEARS, FUNDERS_LOST_SHARE = 10, 0.5
LEASE_THRESHOLD, LEASE_EXTENSION, LEASE_FEES = 7, 5, 2000.0


def fy(label: str) -> int:
    """'2023/24' -> 2023."""
    return int(label[:4])


def year_end(year: int) -> pd.Timestamp:
    return pd.Timestamp(year + 1, 3, 31)


def years_left(end: pd.Timestamp, year: int) -> float:
    return (end - year_end(year)).days / 365.25


def recompute(library_id: str, inputs: Path, income_growth: float, fitted_growth: float | None = None) -> dict:
    accounts = pd.read_csv(inputs / "accounts.csv")
    lines = pd.read_csv(inputs / "lines.csv").set_index("line")
    libraries = pd.read_csv(inputs / "libraries.csv").set_index("library_id")
    reserves = pd.read_csv(inputs / "reserves.csv")
    extensions = pd.read_csv(inputs / "lease_extensions.csv")

    own = accounts[accounts["library_id"] == library_id].assign(year=lambda a: a["financial_year"].map(fy))
    transfer = pd.Timestamp(libraries.loc[library_id, "transfer_date"])
    transfer_fy = transfer.year if transfer.month >= 4 else transfer.year - 1
    normal = sorted(y for y in own["year"].unique() if y > transfer_fy and y not in ABNORMAL and y <= BASE_YEAR)

    def grown(side: str, g: float | None, start: int, end: int) -> float:
        """Prices in ``end`` over ``start``: a fixed growth ``g``, or costs year by year."""
        if side != "expenditure" or g is not None:
            return (1 + g) ** (end - start)
        return math.prod(1 + COST_INFLATION.get(k, 0.025) for k in range(start + 1, end + 1))

    # Trend lines: the base (restated to 2023/24 prices), grown one year.
    amounts = {}
    for line, meta in lines[lines["forecast"].isin(["trend", "fitted"])].iterrows():
        count = int(meta["base_years"]) if pd.notna(meta["base_years"]) else 1
        base_years = normal[-count:]
        rows = own[(own["line"] == line) & own["year"].isin(base_years)].set_index("year")["amount"]
        if rows.empty:
            continue
        fitted = meta["forecast"] == "fitted" and fitted_growth is not None
        g = math.expm1(fitted_growth) if fitted else (income_growth if meta["side"] == "income" else None)
        restated = [rows.get(y, 0.0) * grown(meta["side"], g, y, BASE_YEAR) for y in base_years]
        amounts[line] = sum(restated) / len(restated) * grown(meta["side"], g, BASE_YEAR, YEAR)

    # Leases: recorded extensions to 2023/24, then the rollover rule in 2024/25.
    end = pd.Timestamp(libraries.loc[library_id, "lease_start"]) + pd.DateOffset(
        years=int(libraries.loc[library_id, "lease_years"]))
    recorded = extensions[extensions["library_id"] == library_id].assign(year=lambda e: e["financial_year"].map(fy))
    short = {}
    for year in range(transfer_fy, BASE_YEAR + 1):
        end += pd.DateOffset(years=int(recorded.loc[recorded["year"] == year, "years_added"].sum()))
        short[year] = years_left(end, year) < FUNDERS_MIN_YEARS
    extended_last_year = BASE_YEAR in set(recorded["year"])
    rollover = years_left(end, YEAR) <= LEASE_THRESHOLD and not extended_last_year
    if rollover:
        end += pd.DateOffset(years=LEASE_EXTENSION)
    short_now = years_left(end, YEAR) < FUNDERS_MIN_YEARS
    grant_years = normal[-int(lines.loc["other_grants", "base_years"]):]
    base_short = sum(short[y] for y in grant_years) / len(grant_years)
    factor = min(1.0, (1 - FUNDERS_LOST_SHARE * short_now) / (1 - FUNDERS_LOST_SHARE * base_short))
    if "other_grants" in amounts:
        amounts["other_grants"] *= factor
    fees = LEASE_FEES if rollover else 0.0

    # Café cost of sales at the 2023/24 ratio.
    last = own[own["year"] == BASE_YEAR].set_index("line")["amount"]
    cafe_ratio = last.get("cafe_costs", 0.0) / last["cafe"] if last.get("cafe", 0.0) > 0 else 0.0
    cafe_costs = amounts.get("cafe", 0.0) * cafe_ratio

    held = reserves[(reserves["library_id"] == library_id) & (reserves["financial_year"].map(fy) == BASE_YEAR)].iloc[0]
    opening_cash = held["unrestricted"] - held["fixed_assets"]  # free reserves + designated funds
    interest = INTEREST_RATE * max(opening_cash, 0.0)
    opening_total = held["unrestricted"] + held["restricted"]
    tied = held["restricted"] + held["designated"] + held["fixed_assets"]

    side = lines["side"]
    trend_income = sum(v for k, v in amounts.items() if side[k] == "income")
    trend_costs = sum(v for k, v in amounts.items() if side[k] == "expenditure")
    income = trend_income + interest
    recurring = trend_costs + cafe_costs
    expenditure = recurring + fees
    closing = opening_total + income - expenditure
    free = closing - tied
    return {
        "library_id": library_id, "trend_income": trend_income, "interest": interest,
        "opening_cash": opening_cash, "trend_costs": trend_costs, "cafe_costs": cafe_costs,
        "lease_fees": fees, "funders_factor": factor, "opening_total": opening_total, "tied": tied,
        "income": income, "expenditure": expenditure, "closing_reserves": closing,
        "free_reserves": free, "months_of_cover": free / (recurring / 12),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--income-growth", type=float, default=0.01,
                        help="annual growth of income lines after 2023/24 (default 0.01)")
    parser.add_argument("--inputs", type=Path, default=ROOT / "inputs")
    parser.add_argument("--fits", type=Path, default=None,
                        help="the run's fits.csv: each library's fitted self-generated income growth (log, a year)")
    parser.add_argument("libraries", nargs="*", default=["anstey", "desford"])
    args = parser.parse_args(argv)
    fitted = (pd.read_csv(args.fits).set_index("library_id")["income_growth"].to_dict() if args.fits else {})
    for library_id in args.libraries:
        print(f"# {library_id}: fitted self-generated income growth {fitted.get(library_id, float('nan')):.6f} (log)")
        r = recompute(library_id, args.inputs, args.income_growth, fitted.get(library_id))
        print(f"# {library_id}: trend income {r['trend_income']:,.2f} + interest {INTEREST_RATE} x "
              f"{r['opening_cash']:,.2f} = {r['interest']:,.2f} -> income {r['income']:,.2f};")
        print(f"#   trend costs {r['trend_costs']:,.2f} + café costs {r['cafe_costs']:,.2f}"
              f" + lease fees {r['lease_fees']:,.2f} -> spending {r['expenditure']:,.2f};"
              f" funders' factor {r['funders_factor']:.4f}")
        print(f"#   closing = {r['opening_total']:,.2f} + {r['income']:,.2f} - {r['expenditure']:,.2f}"
              f" = {r['closing_reserves']:,.2f}; free = {r['closing_reserves']:,.2f} - {r['tied']:,.2f} tied"
              f" = {r['free_reserves']:,.2f}; months of cover {r['months_of_cover']:.2f}")
    print()
    for library_id in args.libraries:
        r = recompute(library_id, args.inputs, args.income_growth, fitted.get(library_id))
        print("[[case]]")
        print(f'library_id = "{library_id}"\nfinancial_year = "2024/25"')
        for key in ("income", "expenditure", "closing_reserves", "free_reserves", "months_of_cover"):
            print(f"{key} = {r[key]:.2f}")
        print("tolerance = 0.02\n")


if __name__ == "__main__":
    main()
