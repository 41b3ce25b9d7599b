"""Among its peers: each library beside the CML portfolio, on indicators finance officers read.

A support officer asks of a number "is that good?"; the answer a council's finance officer knows
is the CIPFA Financial Resilience Index: the body set beside its peer group, indicator by
indicator, with the group's median and quartiles. The peer group here is the portfolio: every
library in the run, this one included (so every briefing shows the same quartiles), on the
baseline scenario and on each library's accounts only (its latest actual year), never on the
forecast. The indicators:

* ``months_of_reserves``: free reserves as months of recurring spending (``months_of_cover``) in
  the latest actual year, the same figure as "months of cover now" on page 1;
* ``reserves_change_share``: the change in free reserves over the last ``CHANGE_YEARS`` actual
  years (from the end of the year ``CHANGE_YEARS`` before the latest to the end of the latest), as
  a share of the earlier figure, as CIPFA measures the change in reserves. A percentage of nil or
  of a negative figure means nothing (a rise from £(500) to £100 is not "-120%"), so where free
  reserves were nil or below then, only the change in pounds (``reserves_change``) is given and the
  library is not ranked on it; a library without accounts for that earlier year has "not enough
  years";
* ``years_to_depletion``: free reserves divided by the latest year's deficit (income less all
  spending, one-offs included: what reserves fell by that year); infinite ("not depleting") where
  the library had a surplus or broke even, nil where free reserves are already gone;
* ``council_share``: council grant and contingency fund support over income, latest actual year;
* ``self_generated_share``: self-generated income (café, room hire, events, donations,
  fundraising, Gift Aid) over income, latest actual year.

Quartiles are Excel's QUARTILE.INC (pandas' default, linear between the ranked figures), over the
libraries ranked on the indicator. Where the library stands: "at the median" when it equals it;
else "lowest quarter" at or below the lower quartile, "highest quarter" at or above the upper
one, otherwise "below the median" or "above the median". The quartile bounds count as in the
quarter they close, so a library not depleting is in the highest quarter even when the upper
quartile is itself "not depleting".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cml.fy import fy_label
from cml.scenarios import BASELINE

CHANGE_YEARS = 3  # CIPFA's Financial Resilience Index: the change in reserves over three years
QUARTILES = {"lower_quartile": 0.25, "median": 0.5, "upper_quartile": 0.75}
INDICATORS = ("months_of_reserves", "reserves_change_share", "years_to_depletion", "council_share",
              "self_generated_share")
NOT_ENOUGH_YEARS = "not enough years"
FROM_NIL_OR_BELOW = "not ranked: from nil or below"
NO_SPENDING = "not ranked: no spending"
NO_INCOME = "not ranked: no income"
PEER_COLUMNS = ["scenario", "library_id", "name", "accounts_to", "reserves_change_from", "reserves_change",
                *[f"{indicator}{suffix}" for indicator in INDICATORS
                  for suffix in ("", *[f"_{q}" for q in QUARTILES], "_standing")],
                "libraries"]


def quartiles(values: np.ndarray) -> dict[str, float]:
    """The lower quartile, median and upper quartile of the figures that are not NaN, as Excel's
    QUARTILE.INC: linear between the two ranked figures either side. Infinite figures (a library
    not depleting) rank at the top, and a quartile that reaches into them is infinite too (linear
    interpolation would give NaN for infinity times nil).

    >>> quartiles(np.array([14.0, 2.0, 10.0, 6.0]))
    {'lower_quartile': 5.0, 'median': 8.0, 'upper_quartile': 11.0}
    >>> quartiles(np.array([1.0, np.inf, 2.0, 4.0, np.nan]))
    {'lower_quartile': 1.75, 'median': 3.0, 'upper_quartile': inf}
    """
    ordered = np.sort(values[~np.isnan(values)])
    if not ordered.size:
        return dict.fromkeys(QUARTILES, float("nan"))
    out = {}
    for name, q in QUARTILES.items():
        position = q * (ordered.size - 1)
        low, high = ordered[int(np.floor(position))], ordered[int(np.ceil(position))]
        fraction = position - np.floor(position)
        out[name] = float(low if fraction == 0 or low == high else low + fraction * (high - low))
    return out


def standing(values: pd.Series, bounds: dict[str, float]) -> np.ndarray:
    """Where each figure stands among the portfolio's quartiles (module docstring); NaN: "".

    >>> standing(pd.Series([2.0, 6.0, 8.0, 10.0, 14.0]),
    ...          {"lower_quartile": 5.0, "median": 8.0, "upper_quartile": 11.0}).tolist()
    ['lowest quarter', 'below the median', 'at the median', 'above the median', 'highest quarter']
    """
    low, median, high = (bounds[name] for name in QUARTILES)
    return np.select([values.isna(), values == median, values <= low, values >= high, values < median],
                     ["", "at the median", "lowest quarter", "highest quarter", "below the median"],
                     "above the median")


def latest_actuals(projection: pd.DataFrame) -> pd.DataFrame:
    """Each library's latest actual year on the baseline (indexed by library, in the projection's
    order): what it stands on now."""
    actual = projection[(projection["scenario"] == BASELINE) & (projection["actual_or_forecast"] == "actual")]
    latest = actual.sort_values("year", kind="stable").groupby("library_id").tail(1).set_index("library_id")
    return latest.reindex(actual["library_id"].unique())


def reserves_change(projection: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The change in free reserves over the last ``CHANGE_YEARS`` actual years, in pounds and (where
    free reserves were above nil then) as a share of the earlier figure, with the earlier year."""
    actual = projection[(projection["scenario"] == BASELINE) & (projection["actual_or_forecast"] == "actual")]
    earlier_year = latest["year"] - CHANGE_YEARS
    earlier = actual.set_index(["library_id", "year"])["free_reserves"].reindex(
        pd.MultiIndex.from_arrays([latest.index, earlier_year])).to_numpy()
    change = latest["free_reserves"] - earlier
    return pd.DataFrame({"reserves_change_from": earlier_year.map(fy_label), "reserves_change": change,
                         "reserves_change_share": change / np.where(earlier > 0, earlier, np.nan),
                         "why_unranked": np.select([np.isnan(earlier), earlier <= 0],
                                                   [NOT_ENOUGH_YEARS, FROM_NIL_OR_BELOW], "")},
                        index=latest.index)


def years_to_depletion(free_reserves: pd.Series, surplus: pd.Series) -> pd.Series:
    """Years free reserves last at this year's deficit: infinite with a surplus (or breaking even),
    nil once they are gone.

    >>> years_to_depletion(pd.Series([1000.0, 1000.0, -50.0]), pd.Series([-500.0, 20.0, -10.0])).tolist()
    [2.0, inf, 0.0]
    """
    deficit = -surplus
    return pd.Series(np.where(deficit > 0, free_reserves.clip(lower=0) / deficit.where(deficit > 0), np.inf),
                     index=free_reserves.index)


def indicators(projection: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each library's figure on every indicator (NaN where it is not ranked), and why it is not
    ranked ("" where it is), both indexed by library."""
    latest = latest_actuals(projection)
    change = reserves_change(projection, latest)
    income = latest["income"].where(latest["income"] > 0)
    values = pd.DataFrame({
        "name": latest["name"], "accounts_to": latest["financial_year"],
        "reserves_change_from": change["reserves_change_from"], "reserves_change": change["reserves_change"],
        "months_of_reserves": latest["months_of_cover"],
        "reserves_change_share": change["reserves_change_share"],
        "years_to_depletion": years_to_depletion(latest["free_reserves"], latest["surplus"]),
        "council_share": (latest["council_grant"] + latest["fund_support"]) / income,
        "self_generated_share": latest["self_generated_income"] / income,
    })
    no_income = np.where(income.isna(), NO_INCOME, "")
    why = pd.DataFrame({"months_of_reserves": np.where(latest["months_of_cover"].isna(), NO_SPENDING, ""),
                        "reserves_change_share": change["why_unranked"], "years_to_depletion": "",
                        "council_share": no_income, "self_generated_share": no_income}, index=latest.index)
    return values, why


def peer_table(projection: pd.DataFrame) -> pd.DataFrame:
    """One row per library (baseline): its figure on each indicator, the portfolio's quartiles and
    where it stands (or why it is not ranked), and how many libraries the run holds."""
    values, why = indicators(projection)
    table = values.copy()
    for indicator in INDICATORS:
        bounds = quartiles(values[indicator].to_numpy(dtype=float))
        for name, bound in bounds.items():
            table[f"{indicator}_{name}"] = bound
        table[f"{indicator}_standing"] = np.where(why[indicator] != "", why[indicator],
                                                  standing(values[indicator], bounds))
    table["libraries"] = len(table)
    table.insert(0, "scenario", BASELINE)
    return table.rename_axis("library_id").reset_index()[PEER_COLUMNS]
