"""Financial years (1 April - 31 March), the unit every figure in cml is reported in.

Internally a financial year is the calendar year it starts in (``2018`` for 2018/19);
users read and write the ``"2018/19"`` label that appears in council accounts.

A charity may make its accounts up to another day (5 April, 30 April, 30 September, 31 January):
each twelve-month period is then reported as the financial year it mostly falls in, a period
split evenly going to the year it ends in (the year ending 30 September 2019 is 2019/20; the year
ending 30 April 2019 is 2018/19). :func:`accounting_years` and :func:`period_ends` are the one
place this mapping is made, for dates (transfer, grant payments, leases) and for year ends.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd

_LABEL = re.compile(r"^(\d{4})/(\d{2})$")


def parse_fy(label: str) -> int:
    """Return the start year of a ``"2018/19"`` label; raise ValueError if malformed.

    >>> parse_fy("2021/22")
    2021
    """
    match = _LABEL.match(str(label).strip())
    if not match:
        raise ValueError(f"{label!r} is not a financial year like 2018/19")
    start, end = int(match.group(1)), int(match.group(2))
    if (start + 1) % 100 != end:
        raise ValueError(f"{label!r} is not a financial year: {end:02d} does not follow {start}")
    return start


def fy_label(year: int) -> str:
    """The council's label for the financial year starting in April of ``year``.

    >>> fy_label(2015)
    '2015/16'
    """
    return f"{year}/{(year + 1) % 100:02d}"


def fy_of(day: date) -> int:
    """The financial year a date falls in (years start on 1 April).

    >>> fy_of(date(2016, 2, 1)), fy_of(date(2016, 4, 1))
    (2015, 2016)
    """
    return day.year if day.month >= 4 else day.year - 1


def fy_end(year: int) -> pd.Timestamp:
    """31 March that closes the financial year starting in ``year`` (when accounts are made up).

    >>> fy_end(2023).date()
    datetime.date(2024, 3, 31)
    """
    return pd.Timestamp(year + 1, 3, 31)


def year_ranges(labels: list[str]) -> str:
    """Financial years as a reader lists them: consecutive years joined into a range.

    >>> year_ranges(["2024/25", "2025/26", "2026/27", "2029/30"])
    '2024/25 to 2026/27, 2029/30'
    >>> year_ranges([])
    ''
    """
    runs: list[list[int]] = []
    for year in sorted(parse_fy(label) for label in labels):
        if runs and year == runs[-1][-1] + 1:
            runs[-1].append(year)
        else:
            runs.append([year])
    return ", ".join(fy_label(run[0]) if len(run) == 1 else f"{fy_label(run[0])} to {fy_label(run[-1])}"
                     for run in runs)


STANDARD_YEAR_END = "31 March"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_DAY_MONTH = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)$")
_NUMERIC = re.compile(r"^(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{4}))?$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_year_end(text: str) -> str:
    """The day a charity's accounts are made up to, as ``"30 September"``; raise ValueError if unclear.

    Written as a treasurer would: ``30 September``, ``30 Sep``, ``30/09`` (day first, as in the UK),
    or a full date of any year (``30/09/2023``, ``2023-09-30``). 29 February is refused: a year end
    must fall every year.

    >>> [parse_year_end(t) for t in ("5 April", "30 sept", "31/01", "2023-09-30", "")]
    ['5 April', '30 September', '31 January', '30 September', '31 March']
    """
    value = str(text).strip().lower()
    if not value:
        return STANDARD_YEAR_END
    day = month = None
    if match := _DAY_MONTH.match(value):
        word = match.group(2)
        names = [m for m in MONTHS if len(word) >= 3 and m.lower().startswith(word)]
        day, month = int(match.group(1)), (MONTHS.index(names[0]) + 1 if names else None)
    elif match := _ISO.match(value):
        month, day = int(match.group(2)), int(match.group(3))
    elif match := _NUMERIC.match(value):
        day, month = int(match.group(1)), int(match.group(2))
    if month is None or not 1 <= month <= 12:
        raise ValueError(f"{text!r} is not a year end written like 30 September or 30/09")
    if (month, day) == (2, 29):
        raise ValueError(f"{text!r}: 29 February is not a year end every year; use 28 February")
    try:
        date(2001, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the year") from None
    return f"{day} {MONTHS[month - 1]}"


def _period_rule(year_end: str) -> tuple[int, int, int]:
    """For a year end: the month and day each accounting period starts, and how many financial
    years after the one its first day falls in the period is reported (0 or 1)."""
    day, month_name = year_end.split(" ")
    after = date(2001, MONTHS.index(month_name) + 1, int(day)) + timedelta(days=1)
    start = date(2001, after.month, after.day)  # a year with no 29 February in the period
    end = date(2002, start.month, start.day) - timedelta(days=1)
    days_in_first = (min(fy_end(fy_of(start)).date(), end) - start).days + 1
    return start.month, start.day, 0 if days_in_first > ((end - start).days + 1) / 2 else 1


def accounting_years(dates: pd.Series, year_ends: pd.Series) -> pd.Series:
    """The financial year (start year) of the accounting period each date falls in, for each row's
    year end (``"31 March"`` gives the financial year the date falls in).

    >>> days = pd.to_datetime(pd.Series(["2019-09-30", "2019-10-01", "2019-04-30", "2019-05-01"]))
    >>> accounting_years(days, pd.Series(["30 September", "30 September", "30 April", "30 April"])).tolist()
    [2019, 2020, 2018, 2019]
    """
    out = pd.Series(0, index=dates.index, dtype=int)
    for year_end, rows in dates.groupby(year_ends.to_numpy(), sort=False):
        month, day, shift = _period_rule(year_end)
        started = (rows.dt.month > month) | ((rows.dt.month == month) & (rows.dt.day >= day))
        start_year = rows.dt.year.where(started, rows.dt.year - 1)
        out[rows.index] = (start_year if month >= 4 else start_year - 1) + shift
    return out


def period_ends(years: pd.Series | int, year_ends: pd.Series) -> pd.Series:
    """The last day of each row's accounting period reported as financial year ``years``.

    >>> period_ends(2019, pd.Series(["31 March", "30 September", "5 April", "31 January"])).dt.strftime("%d %b %Y").tolist()
    ['31 Mar 2020', '30 Sep 2019', '05 Apr 2020', '31 Jan 2020']
    """
    years = pd.Series(years, index=year_ends.index) if not isinstance(years, pd.Series) else years
    out = pd.Series(pd.NaT, index=year_ends.index, dtype="datetime64[ns]")
    for year_end, rows in years.groupby(year_ends.to_numpy(), sort=False):
        month, day, shift = _period_rule(year_end)
        start_year = rows.astype(int) - shift + (0 if month >= 4 else 1)
        next_start = pd.to_datetime(pd.DataFrame({"year": start_year + 1, "month": month, "day": day}))
        out[rows.index] = next_start - pd.Timedelta(days=1)
    return out


def library_years(libraries: pd.DataFrame, column: str) -> pd.Series:
    """The financial year of each library's date in ``column`` (``transfer_date``, ``lease_start``),
    by its own year end, indexed by ``library_id``."""
    dates = pd.to_datetime(libraries[column]).reset_index(drop=True)
    years = accounting_years(dates, libraries["year_end"].reset_index(drop=True))
    return years.set_axis(libraries["library_id"].to_numpy())
