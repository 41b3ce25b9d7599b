"""What would stop it: the fundraising or saving that keeps a library at its reserves policy.

A treasurer told "you run out in 2028/29" asks next how much to raise or to save. The answer is
solved, not guessed: the smallest sum a year, the same in cash every year from the first
forecast year, that keeps free reserves at or above the library's reserves policy
(``reserves_target_months`` in libraries.csv, times that year's recurring spending / 12) in every
forecast year to the horizon. A library already below its policy cannot be back at it in the
first year without raising the whole gap at once (and then again every year: the target would
be the gap, not the need), so it is given ``targets.rebuild_within_years``, as a reserves policy
sets a period to rebuild in: until then free reserves must not fall below where they start (nor
above the policy be asked of them); from the last of those years on, the policy. Free reserves
are a rising function of the sum (more income, more interest, never less), so it is found by
bisection on the same roll-forward (:func:`cml.fund.roll`) the forecast uses, for every library
at once:

* **extra income**: the sum is added to the year's surplus; the policy line does not move;
* **saving**: the sum is added to the surplus and taken off recurring spending, so the policy
  line (months of spending) falls with it and a saving needs a little less than extra income.

With the simulation's futures (:func:`cml.simulation.draw_flows`, the scenario's own seed) the
same bisection finds the sum that keeps the policy in a stated share of futures
(``targets.confidence``): the same futures for every sum tried, so the share rises with the sum.

The trustees' levers ``levers.extra_income`` and ``levers.saving`` (:func:`cml.adjustments.apply_levers`)
put a sum through the whole model, so a briefing's target can be tried as a what-if; the tests
feed each target back that way and find the policy kept within £1.

Each library is solved with the others as forecast: where the fund pays claims, one library's
extra income leaves its claims, and so the others' payments, as they were or better.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cml.fund import Flows, FundRules, roll

PRECISION = 0.005  # pounds: bisection stops when every library's bracket is narrower than half a penny


@dataclass(frozen=True)
class Lever:
    """How a sum a year enters the flows: extra income, or a saving on recurring spending."""

    name: str
    cuts_spending: bool


EXTRA_INCOME = Lever("extra_income", False)
SAVING = Lever("saving", True)


def with_sum(flows: Flows, amount: np.ndarray, lever: Lever) -> Flows:
    """The flows with ``amount`` (draws or 1, libraries) a year more in every forecast year."""
    added = amount[..., None] * flows.ahead[None]
    recurring = flows.recurring - added if lever.cuts_spending else flows.recurring
    return replace(flows, surplus=flows.surplus + added, recurring=recurring)


def required(flows: Flows, policy: np.ndarray, rebuild_within: int) -> np.ndarray:
    """What free reserves must be at each year end: the policy from the ``rebuild_within``-th
    forecast year on; before it, the policy or, if lower, the free reserves the library starts
    from (never below nil).

    >>> flows = Flows(np.array(["a"]), np.arange(4), np.array([[False, True, True, True]]), None, None, {},
    ...               None, np.array([100.0]), None)
    >>> required(flows, np.full((1, 1, 4), 300.0), 2).tolist()  # the first year is actual: not compared
    [[[100.0, 100.0, 300.0, 300.0]]]
    """
    forecast_year = np.cumsum(flows.ahead, axis=1)  # 1 in the first forecast year
    start = np.maximum(flows.free_at_cut, 0.0)[None, :, None]
    return np.where(forecast_year[None] >= rebuild_within, policy, np.minimum(policy, start))


def policy_headroom(flows: Flows, rules: FundRules, policy_months: np.ndarray, rebuild_within: int,
                    draws: int) -> np.ndarray:
    """(draws, libraries): the lowest margin of free reserves over what is :func:`required` in
    any forecast year (negative: short of it then)."""
    free = roll(flows, rules, draws).free_reserves
    policy = policy_months[None, :, None] * np.maximum(np.broadcast_to(flows.recurring, free.shape), 0.0) / 12.0
    margin = np.where(flows.ahead[None], free - required(flows, policy, rebuild_within), np.inf)
    return margin.min(axis=-1)


def solve(flows: Flows, rules: FundRules, policy_months: np.ndarray, rebuild_within: int, lever: Lever,
          confidence: float | None, draws: int = 1) -> np.ndarray:
    """Per library, the smallest sum a year keeping the policy (in ``confidence`` of the draws, or
    in the one central draw when None); NaN where even the library's whole spending would not."""
    n_lib = len(flows.libraries)
    wanted = 1.0 if confidence is None else confidence

    def kept(amount: np.ndarray) -> np.ndarray:
        headroom = policy_headroom(with_sum(flows, np.broadcast_to(amount, (1, n_lib)), lever), rules,
                                   policy_months, rebuild_within, draws)
        return (headroom >= 0).mean(axis=0) >= wanted - 1e-12

    low = np.zeros(n_lib)
    ceiling = np.maximum(np.where(flows.ahead, np.asarray(flows.recurring).max(axis=0), 0.0).max(axis=1), 1.0)
    reachable = kept(ceiling)
    done = kept(low)
    high = np.where(done, 0.0, ceiling)
    while (high - low).max(initial=0.0) > PRECISION:  # about 25 halvings for a bracket of £100,000
        middle = (low + high) / 2
        ok = kept(middle)
        high, low = np.where(ok, middle, high), np.where(ok, low, middle)
    return np.where(reachable, high, np.nan)


def lowest_headroom(flows: Flows, rules: FundRules, policy_months: np.ndarray) -> pd.DataFrame:
    """``library_id, headroom, headroom_year``: the central path's lowest margin over the policy
    and the year it falls, so a library above its policy hears how far above."""
    free = roll(flows, rules, 1).free_reserves[0]
    policy = policy_months[:, None] * np.maximum(flows.recurring[0], 0.0) / 12.0
    margin = np.where(flows.ahead, free - policy, np.inf)
    at = margin.argmin(axis=1)
    return pd.DataFrame({"library_id": flows.libraries, "headroom": margin[np.arange(len(at)), at],
                         "headroom_year": flows.years[at]})
