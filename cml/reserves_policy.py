"""What reserves to hold: a requirement built from each library's own risks (Charity Commission
CC19), set beside its flat "N months" policy and the simulation's shortfall.

The way charity finance advisers' reserves calculators work: list what could go wrong, each as
a probability and an impact in pounds, and hold the sum of probability x impact. The risks and
their defaults by lease type are data (``inputs/reserves_risks.csv``); each is scored on the
library's latest accounts:

* ``income_group``: ``impact`` percent of the latest year's income of a group of lines.csv
  (how insecure that income is: a quarter of trading income in a poor year);
* ``line``: ``impact`` percent of one line (a partner renting space leaving);
* ``spending``: ``impact`` months of the latest year's recurring spending (winding up);
* ``fixed``: ``impact`` pounds (a roof on a full-repairing lease);
* ``lease_fees``: ``impact`` pounds, only where the lease has ``lease.threshold_years`` or fewer
  years left at the latest accounts (the extension and its fees are due).

A risk applies to libraries of its ``lease_type`` (or ``all``). With no risks the requirement is
nil; each risk added raises it by its own probability x impact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cml.fy import fy_label

REQUIREMENT_COLUMNS = ["library_id", "financial_year", "requirement", "reserves_target_now", "policy_months",
                       "free_reserves_now", "holds", "lowest_free_reserves", "lowest_year", "below_requirement_from",
                       "lowest_1_in_10", "lowest_1_in_10_year", "spare_at_lowest",
                       "shortfall_1_in_10", "shortfall_year", "verdict"]
RISK_COLUMNS = ["library_id", "risk", "label", "basis", "of", "of_label", "impact", "exposure", "probability",
                "impact_pounds", "amount"]


def latest_figures(lines: pd.DataFrame, latest: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The lines of each library's latest actual year (``latest``: that year's projection row, by
    library): ``library_id, line, group, amount``, and its recurring spending (by library)."""
    year = lines["library_id"].map(latest["year"])
    return lines[lines["year"] == year], latest["recurring_spending"]


def score_risks(risks: pd.DataFrame, libraries: pd.DataFrame, latest_lines: pd.DataFrame, recurring: pd.Series,
                lease_short: pd.Series, line_labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Per library and risk that applies to it: the ``exposure`` (the pounds the impact is a
    share or a multiple of), the impact in pounds, the probability and ``amount`` = probability x
    impact; ``of_label`` names what the impact is a share of (a line's label, or the group).

    >>> risks = pd.DataFrame({"risk": ["dip", "roof"], "lease_type": ["all", "full_repairing"],
    ...                       "basis": ["income_group", "fixed"], "of": ["self_generated", ""],
    ...                       "probability_percent": [50.0, 12.0], "impact": [25.0, 20000.0], "label": ["", ""]})
    >>> libraries = pd.DataFrame({"library_id": ["a", "b"], "lease_type": ["full_repairing", "other"]})
    >>> lines = pd.DataFrame({"library_id": ["a", "b"], "line": ["cafe", "cafe"], "group": "self_generated",
    ...                       "amount": [4000.0, 1000.0]})
    >>> scored = score_risks(risks, libraries, lines, pd.Series({"a": 1.0, "b": 1.0}), pd.Series({"a": False, "b": False}))
    >>> scored[["library_id", "risk", "amount"]].values.tolist()
    [['a', 'dip', 500.0], ['a', 'roof', 2400.0], ['b', 'dip', 125.0]]
    """
    pairs = libraries[["library_id", "lease_type"]].merge(risks.rename(columns={"lease_type": "applies_to"}), how="cross")
    pairs = pairs[(pairs["applies_to"] == "all") | (pairs["applies_to"] == pairs["lease_type"])].reset_index(drop=True)
    by_group = latest_lines.groupby(["library_id", "group"])["amount"].sum()
    by_line = latest_lines.groupby(["library_id", "line"])["amount"].sum()

    def looked_up(table: pd.Series) -> pd.Series:
        keys = pd.MultiIndex.from_arrays([pairs["library_id"], pairs["of"]])
        return pd.Series(table.reindex(keys).to_numpy(), index=pairs.index).fillna(0.0)

    basis = pairs["basis"]
    exposure = np.select(
        [basis == "income_group", basis == "line", basis == "spending", basis == "lease_fees"],
        [looked_up(by_group), looked_up(by_line), pairs["library_id"].map(recurring).clip(lower=0.0) / 12.0,
         pairs["library_id"].map(lease_short).astype(float)],
        default=1.0)
    scale = np.where(basis.isin(["income_group", "line"]), pairs["impact"] / 100.0, pairs["impact"])
    scored = pairs.assign(exposure=exposure, probability=pairs["probability_percent"] / 100.0,
                          impact_pounds=exposure * scale)
    scored["amount"] = scored["probability"] * scored["impact_pounds"]
    labels = line_labels or {}
    scored["of_label"] = np.where(basis == "line", scored["of"].map(lambda line: labels.get(line, line)),
                                  scored["of"].str.replace("_", " "))
    return scored.sort_values(["library_id", "risk"], kind="stable", ignore_index=True)[RISK_COLUMNS]


def simulated_shortfall(risk: pd.DataFrame, years_ahead: int) -> pd.DataFrame:
    """Per library: how far below the middle future free reserves are in 1 future in 10,
    ``years_ahead`` forecast years on (the 50th less the 10th percentile): the test a risk-based
    requirement should pass; and the lowest free reserves fall to in 1 future in 10 (the 10th
    percentile's low point over the forecast years), which is what "more than it needs" is judged on."""
    first = risk.groupby("library_id")["year"].transform("min")
    at = risk[risk["year"] == first + years_ahead - 1].set_index("library_id")
    low = risk.loc[risk.groupby("library_id")["free_reserves_p10"].idxmin()].set_index("library_id")
    return pd.DataFrame({"shortfall_1_in_10": at["free_reserves_p50"] - at["free_reserves_p10"],
                         "shortfall_year": at["financial_year"], "lowest_1_in_10": low["free_reserves_p10"],
                         "lowest_1_in_10_year": low["financial_year"]})


def verdict(free_now: pd.Series, lowest: pd.Series, lowest_1_in_10: pd.Series, requirement: pd.Series,
            policy: pd.Series, far_more_than: float) -> pd.Series:
    """``short``: below what its risks call for now; ``short_later``: enough now, but the forecast's
    deficits take it below; ``far_more``: even in 1 future in 10, at its lowest point, above
    ``far_more_than`` times the higher of the requirement and the flat policy (told as plainly as
    one holding too little: CC19 asks trustees to explain or use such reserves); else ``enough``.
    Reserves that the forecast's own deficits, or a bad run of years, would use are not spare, so
    "far more" is judged at the low point of a bad future, not today.

    >>> verdict(pd.Series([100.0, 900.0, 900.0, 300.0, 900.0]), pd.Series([50.0, 800.0, -10.0, 250.0, 800.0]),
    ...         pd.Series([0.0, 700.0, -90.0, 200.0, 350.0]), pd.Series([200.0] * 5), pd.Series([150.0] * 5),
    ...         2.0).tolist()
    ['short', 'far_more', 'short_later', 'enough', 'enough']
    """
    needed = np.maximum(requirement, policy)
    return pd.Series(np.select([free_now < requirement, lowest < requirement, lowest_1_in_10 > far_more_than * needed],
                               ["short", "short_later", "far_more"], default="enough"), index=free_now.index)


def lowest_point(ahead: pd.DataFrame, requirement: pd.Series) -> pd.DataFrame:
    """Per library, from its forecast years (``library_id, year, free_reserves``): the lowest free
    reserves and their year, and the first year below ``requirement`` (None: never)."""
    ahead = ahead.sort_values("year")
    low = ahead.loc[ahead.groupby("library_id")["free_reserves"].idxmin()].set_index("library_id")
    below = ahead[ahead["free_reserves"] < ahead["library_id"].map(requirement)].groupby("library_id")["year"].first()
    return pd.DataFrame({"lowest_free_reserves": low["free_reserves"], "lowest_year": low["year"].map(fy_label),
                         "below_requirement_from": below.map(fy_label)})


def reserves_requirement(scored: pd.DataFrame, now: pd.DataFrame, ahead: pd.DataFrame, shortfall: pd.DataFrame,
                         far_more_than: float) -> pd.DataFrame:
    """Per library: the risk-based requirement beside the flat policy (``now``: ``financial_year,
    reserves_target_now, policy_months, free_reserves_now`` by library), what it holds beyond the
    requirement, the forecast's low point (``ahead``: forecast years' free reserves), the simulated
    1-in-10 shortfall and the verdict."""
    requirement = scored.groupby("library_id")["amount"].sum().reindex(now.index, fill_value=0.0).rename("requirement")
    table = now.join(requirement).join(lowest_point(ahead, requirement)).join(shortfall)
    table["holds"] = table["free_reserves_now"] - table["requirement"]
    table["spare_at_lowest"] = table["lowest_1_in_10"] - np.maximum(table["requirement"], table["reserves_target_now"])
    table["verdict"] = verdict(table["free_reserves_now"], table["lowest_free_reserves"], table["lowest_1_in_10"],
                               table["requirement"], table["reserves_target_now"], far_more_than)
    return table.rename_axis("library_id").reset_index()[REQUIREMENT_COLUMNS]
