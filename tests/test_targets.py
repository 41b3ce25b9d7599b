"""The fundraising and saving targets (cml.targets): hand-worked cases, and the target fed back
into the whole model (as a trustee's lever) keeps free reserves at the policy within £1."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cml.fund import Flows, FundRules
from cml.projection import scenario_runs
from cml.scenarios import BASELINE, load_scenarios
from cml.targets import EXTRA_INCOME, SAVING, policy_headroom, solve

from tests.conftest import SHIPPED

NO_FUND = FundRules(opening_year=9999, opening_balance=0.0, top_ups={}, cap_per_claim=0.0, cap_per_library=0.0,
                    pays_building_failures=False, pays_reserves_floor=False, reserves_floor_months=0.0, interest_rate=0.0)
SIX_MONTHS = np.array([6.0])


def one_library(free_at_cut: float, surplus: np.ndarray, recurring: float = 1200.0) -> Flows:
    """Library a: accounts to 2023/24, forecast 2024/25-2026/27, 1,200 a year of recurring spending
    (a 6-month policy is 600); ``surplus`` is (draws, 3) for the forecast years."""
    surplus = np.atleast_2d(surplus)
    return Flows(libraries=np.array(["a"]), years=np.arange(2023, 2027), ahead=np.array([[False, True, True, True]]),
                 surplus=np.concatenate([np.zeros((len(surplus), 1)), surplus], axis=1)[:, None, :],
                 recurring=np.full((1, 1, 4), recurring), needs={}, recorded=np.zeros(4),
                 free_at_cut=np.array([free_at_cut]), cash_less_free=np.zeros(1))


def test_target_keeps_the_policy_at_the_horizon_extra_income_and_saving():
    """Free reserves 1,000, a deficit of 500 a year for 3 years, policy 6 months (600), no rebuild
    period. Extra income S: 1,000 + 3(S - 500) = 600 -> S = 366.67. A saving S also lowers the
    policy to 6/12 x (1,200 - S): 1,000 + 3(S - 500) = 600 - S/2 -> 3.5 S = 1,100 -> S = 314.29."""
    flows = one_library(1000.0, np.full(3, -500.0))
    assert solve(flows, NO_FUND, SIX_MONTHS, 1, EXTRA_INCOME, None)[0] == pytest.approx(366.67, abs=0.01)
    assert solve(flows, NO_FUND, SIX_MONTHS, 1, SAVING, None)[0] == pytest.approx(314.29, abs=0.01)


def test_a_library_below_its_policy_rebuilds_within_the_stated_years():
    """Free reserves 400, under the 600 policy, rebuild within 3 years; deficit 500 a year. Years 1-2
    must not fall below the start (400): S >= 500; year 3 must reach 600: 400 + 3(S - 500) = 600 ->
    S = 566.67. Saving: the policy is 600 - S/2, below the start once S > 400, so every year must
    keep it: year 3 binds, 400 + 3(S - 500) = 600 - S/2 -> S = 1,700 / 3.5 = 485.71."""
    flows = one_library(400.0, np.full(3, -500.0))
    assert solve(flows, NO_FUND, SIX_MONTHS, 3, EXTRA_INCOME, None)[0] == pytest.approx(566.67, abs=0.01)
    assert solve(flows, NO_FUND, SIX_MONTHS, 3, SAVING, None)[0] == pytest.approx(485.71, abs=0.01)
    # within 1 year instead: year 1 must reach 600 at once: 400 + S - 500 = 600 -> S = 700
    assert solve(flows, NO_FUND, SIX_MONTHS, 1, EXTRA_INCOME, None)[0] == pytest.approx(700.0, abs=0.01)


def test_a_library_above_its_policy_needs_nothing_and_interest_counts():
    """Free reserves 2,000 and a deficit of 400 a year: 2,000 - 1,200 = 800 >= 600, no target. With
    a 10% bank rate and free reserves 600, a deficit of 60 a year is exactly met by interest (60)."""
    assert solve(one_library(2000.0, np.full(3, -400.0)), NO_FUND, SIX_MONTHS, 1, EXTRA_INCOME, None)[0] == 0.0
    with_interest = replace(NO_FUND, interest_rate=0.10)
    assert solve(one_library(600.0, np.full(3, -60.0)), with_interest, SIX_MONTHS, 1, EXTRA_INCOME, None)[0] == pytest.approx(0.0, abs=0.01)
    assert solve(one_library(600.0, np.full(3, -70.0)), with_interest, SIX_MONTHS, 1, EXTRA_INCOME, None)[0] > 9.0


def test_the_target_at_a_confidence_keeps_the_policy_in_that_share_of_futures():
    """2,000 futures of a deficit of 500 +- 300 a year: at the 80% target at least 80% of futures
    keep the policy, and £1 less keeps it in fewer than 80%; the central target is lower."""
    rng = np.random.default_rng(7)
    futures = one_library(1000.0, -500.0 + 300.0 * rng.standard_normal((2000, 3)))
    target = solve(futures, NO_FUND, SIX_MONTHS, 1, EXTRA_INCOME, 0.8, draws=2000)[0]

    def share_kept(amount: float) -> float:
        more = replace(futures, surplus=futures.surplus + amount * futures.ahead[None])
        return float((policy_headroom(more, NO_FUND, SIX_MONTHS, 1, 2000) >= 0).mean())

    assert share_kept(target) >= 0.8 > share_kept(target - 1.0)
    assert target > 366.67 + 50


# ---------------------------------------------------------------------------------------------
# Fed back into the whole model


def required_margin(projection: pd.DataFrame, library_id: str, rebuild_within: int) -> float:
    """The lowest margin of free reserves over what the target keeps: the policy from the
    ``rebuild_within``-th forecast year, before it the policy or the starting reserves if lower."""
    rows = projection[projection["library_id"] == library_id].sort_values("year")
    start = max(rows.loc[rows["actual_or_forecast"] == "actual", "free_reserves"].iloc[-1], 0.0)
    ahead = rows[rows["actual_or_forecast"] == "forecast"]
    policy = ahead["reserves_target"]
    required = np.where(np.arange(1, len(ahead) + 1) >= rebuild_within, policy, np.minimum(policy, start))
    return float((ahead["free_reserves"] - required).min())


@pytest.mark.parametrize("lever, column", [("extra_income", "extra_income"), ("saving", "saving")])
def test_the_solved_target_fed_back_as_a_lever_keeps_the_policy_within_a_pound(inputs, scenario_forecast, lever, column):
    """For the two libraries with the largest targets, ``levers.<lever>`` = the target gives a
    lowest margin over the policy of £0 to £1; a pound less falls short."""
    targets = scenario_forecast.targets.nlargest(2, "extra_income")
    within = inputs.assumptions.targets_rebuild_within_years
    baseline = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]
    assert baseline.name == BASELINE
    for row in targets.itertuples():
        target = getattr(row, column)
        assert target > 1000
        settings = {**baseline.settings, "levers.libraries": [row.library_id], f"levers.{lever}": target}
        kept = scenario_runs(inputs, [replace(baseline, settings=settings)])[BASELINE].projection
        assert 0.0 <= required_margin(kept, row.library_id, within) <= 1.0, row.name
        settings[f"levers.{lever}"] = target - 1.0
        short = scenario_runs(inputs, [replace(baseline, settings=settings)])[BASELINE].projection
        assert required_margin(short, row.library_id, within) < 0.0, row.name
