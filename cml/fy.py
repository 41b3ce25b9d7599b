"""Financial years (1 April - 31 March), the unit every figure in cml is reported in.

Internally a financial year is the calendar year it starts in (``2018`` for 2018/19);
users read and write the ``"2018/19"`` label that appears in council accounts.
"""

from __future__ import annotations

import re
from datetime import date

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


def fy_of_dates(dates: pd.Series) -> pd.Series:
    """:func:`fy_of` for a whole column of dates at once."""
    return pd.Series(np.where(dates.dt.month >= 4, dates.dt.year, dates.dt.year - 1), index=dates.index)


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
