"""The council's tapered grant schedule, turned into pounds per library and financial year.

Stage 2 of the pipeline (inputs -> **schedule** -> projection -> scenarios -> render).

Grant year *k* runs for twelve months from the transfer date plus *k*-1 years; its award is the
taper percentage for *k* times the library's original running costs (``inputs/taper.csv``).
How an award lands in financial years is an assumption (``[grant] payment``):

* ``in_advance`` - the whole award is paid on the first day of the grant year. This is what
  reproduces the seeds: every library that transferred in 2015/16 receives its last (7th) grant
  in 2021/22 (seed 000 para 14; domain.md).
* ``by_days`` - the award is apportioned to financial years by the days of the grant year that
  fall in each, as an accruals view would.

Both keep the total: the apportioned amounts of a grant year always sum to its award. A library
whose accounts end on another day than 31 March has its grant counted in the accounting period it
falls in, reported as that period's financial year (:mod:`cml.fy`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cml.fy import accounting_years, period_ends

PAYMENT_TIMINGS = ("in_advance", "by_days")


def add_years(dates: pd.Series, years: pd.Series) -> pd.Series:
    """Add whole years to dates, moving 29 February to 28 February when needed."""
    year = dates.dt.year + years
    month = dates.dt.month
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = dates.dt.day.where(~((month == 2) & (dates.dt.day == 29) & ~leap), 28)
    return pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}))


def grant_years(libraries: pd.DataFrame, taper: pd.DataFrame) -> pd.DataFrame:
    """One row per library and grant year: its dates and its award in pounds.

    ``libraries`` needs ``library_id``, ``transfer_date``, ``original_running_costs`` and
    ``year_end``; ``taper`` needs ``grant_year`` and ``percent_of_running_costs``.
    """
    rows = libraries[["library_id", "transfer_date", "original_running_costs", "year_end"]].merge(
        taper[["grant_year", "percent_of_running_costs"]], how="cross"
    )
    transfer = pd.to_datetime(rows["transfer_date"])
    rows["start"] = add_years(transfer, rows["grant_year"] - 1)
    rows["end"] = add_years(transfer, rows["grant_year"])
    rows["award"] = rows["original_running_costs"] * rows["percent_of_running_costs"] / 100.0
    return rows[["library_id", "grant_year", "start", "end", "award", "year_end"]].reset_index(drop=True)


def apportion_to_financial_years(years: pd.DataFrame, payment: str) -> pd.DataFrame:
    """Split each grant year's award across the financial years it is paid in.

    A twelve-month grant year touches at most two of the library's accounting years, so each row
    becomes a first part (from its start to the start of the next accounting year, or all of it)
    and a remainder.
    Returns ``library_id, grant_year, year, amount`` with zero-amount parts dropped.
    """
    if payment not in PAYMENT_TIMINGS:
        raise ValueError(f"grant payment must be one of {PAYMENT_TIMINGS}, not {payment!r}")
    start, end = years["start"], years["end"]
    first_fy = accounting_years(start, years["year_end"])
    next_period = period_ends(first_fy, years["year_end"]) + pd.Timedelta(days=1)
    if payment == "in_advance":
        share_first = np.ones(len(years))
    else:
        days_first = (np.minimum(end, next_period) - start).dt.days
        share_first = days_first / (end - start).dt.days
    first = years.assign(year=first_fy, amount=years["award"] * share_first)
    rest = years.assign(year=first_fy + 1, amount=years["award"] - first["amount"])
    parts = pd.concat([first, rest], ignore_index=True)
    parts = parts[parts["amount"] != 0]
    return parts[["library_id", "grant_year", "year", "amount"]].sort_values(
        ["library_id", "grant_year", "year"], ignore_index=True
    )


def grant_schedule(libraries: pd.DataFrame, taper: pd.DataFrame, payment: str) -> pd.DataFrame:
    """Council taper grant per library and financial year: ``library_id, year, council_grant``."""
    parts = apportion_to_financial_years(grant_years(libraries, taper), payment)
    schedule = parts.groupby(["library_id", "year"], as_index=False)["amount"].sum()
    return schedule.rename(columns={"amount": "council_grant"})


def last_grant_year(schedule: pd.DataFrame) -> pd.Series:
    """The last financial year (start year) in which each library receives any taper grant."""
    paid = schedule[schedule["council_grant"] > 0]
    return paid.groupby("library_id")["year"].max()


def one_off_grants(libraries: pd.DataFrame, one_offs: pd.DataFrame) -> pd.DataFrame:
    """Programme grants paid to every library as a share of running costs in a given year.

    ``one_offs`` rows (``inputs/one_off_grants.csv``) give ``year``, ``line`` and
    ``percent_of_running_costs``; e.g. the 2020/21 contingency-fund grant of 20%
    (seed 000 para 18, £58,000 in all). Returns ``library_id, year, line, amount``.
    """
    rows = libraries[["library_id", "original_running_costs"]].merge(
        one_offs[["year", "line", "percent_of_running_costs"]], how="cross"
    )
    rows["amount"] = rows["original_running_costs"] * rows["percent_of_running_costs"] / 100.0
    return rows[["library_id", "year", "line", "amount"]]
