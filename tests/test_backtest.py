"""The backtest: the status quo re-run from past cut-offs, scored with its range against the accounts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cml.backtest import crps, ensemble_scores, naive_forecasts, run_backtest
from cml.projection import fit_for
from cml.scenarios import load_scenarios
from cml.simulation import Simulated


SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture(scope="module")
def backtest(inputs, scenario_forecast):
    baseline = next(s for s in load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions) if s.name == "baseline")
    full_run = scenario_forecast.projection[scenario_forecast.projection["scenario"] == "baseline"]
    return run_backtest(inputs, baseline, full_run)


def test_naive_forecasts_by_hand() -> None:
    """Free reserves 100, 130, 190 in 2016-2018; cut-off 2018: flat 190 every year; three-year
    trend +45 a year (the mean of +30 and +60): 235 in 2019, 280 in 2020."""
    free = pd.Series([100.0, 130.0, 190.0], index=pd.MultiIndex.from_tuples([("a", 2016), ("a", 2017), ("a", 2018)],
                                                                            names=["library_id", "year"]))
    naive = naive_forecasts(free, 2018, [2019, 2020]).set_index(["method", "target_year"])["forecast"]
    assert naive[("flat", 2019)] == naive[("flat", 2020)] == 190.0
    assert naive[("three_year_trend", 2019)] == 235.0 and naive[("three_year_trend", 2020)] == 280.0


def test_ensemble_scores_by_hand() -> None:
    """Futures 1..100 for one library-year: the middle 50% is about 25.75 to 75.25, the middle 90%
    5.95 to 95.05. An actual of 50.5 is inside both; 90 is inside the 90% only; 99 neither."""
    samples = np.arange(1.0, 101.0, dtype=np.float32)[:, None, None].repeat(3, axis=2)
    sim = Simulated(np.array(["a"]), np.array([2019, 2020, 2021]), samples, np.zeros((100, 3)), np.zeros((100, 3)))
    free = pd.Series([50.5, 90.0, 99.0], index=pd.MultiIndex.from_tuples([("a", 2019), ("a", 2020), ("a", 2021)]))
    scores = ensemble_scores(sim, free, [2019, 2020, 2021]).set_index("target_year")
    assert scores["inside_50"].tolist() == [True, False, False]
    assert scores["inside_90"].tolist() == [True, True, False]
    assert scores.loc[2019, "crps"] == pytest.approx(8.335)
    assert scores.loc[2021, "crps"] > scores.loc[2020, "crps"] > scores.loc[2019, "crps"]


def test_crps_of_a_sharp_right_forecast_is_nil_and_grows_with_the_miss() -> None:
    assert crps(np.full((50, 1), 7.0), np.array([7.0])).tolist() == [0.0]
    assert crps(np.full((50, 1), 7.0), np.array([10.0])).tolist() == [3.0]


def test_scores_put_coverage_on_the_statistical_forecast_only(backtest) -> None:
    scores = backtest.scores
    ours = scores[scores["method"] == "cml"]
    assert ours["covered_50"].between(0, 1).all() and ours["covered_90"].between(0, 1).all()
    assert (ours["covered_90"] >= ours["covered_50"]).all()
    naive = scores[scores["method"] != "cml"]
    assert naive["covered_50"].isna().all()
    assert np.allclose(naive["crps"], naive["mean_absolute_error"])  # a point forecast's CRPS is its error


def test_forecasts_across_the_covid_closures_are_scored_apart(backtest) -> None:
    """A forecast from 2019/20 of 2022/23 crosses the closures; one from 2021/22 of 2022/23 does not."""
    rows = backtest.rows
    crossing = rows[(rows["cutoff"] == 2019) & (rows["target_year"] == 2022)]
    after = rows[(rows["cutoff"] == 2021) & (rows["target_year"] == 2022)]
    assert len(crossing) and crossing["through_covid"].all()
    into = rows[(rows["cutoff"] == 2019) & (rows["target_year"] == 2020)]  # the target itself is a Covid year
    assert len(into) and into["through_covid"].all()
    assert len(after) and not after["through_covid"].any()
    assert set(backtest.scores["through_covid"]) == {True, False}


def test_the_statistical_forecast_beats_the_naive_ones_a_year_ahead(backtest) -> None:
    """On the shipped (illustrative) data: the error one and two years ahead is below both naive
    forecasts'. If a model change breaks this, the report says so; this test says it first."""
    normal = backtest.scores[~backtest.scores["through_covid"]].set_index(["horizon", "method"])["mean_absolute_error"]
    for horizon in (1, 2):
        assert normal[(horizon, "cml")] < min(normal[(horizon, "flat")], normal[(horizon, "three_year_trend")])


def test_the_backtest_refits_at_each_cut_off(inputs) -> None:
    """The fit at an earlier cut-off sees fewer years: the models are not fitted once on all the accounts."""
    early = fit_for(replace(inputs, assumptions=replace(inputs.assumptions, actuals_to=2019)))
    late = fit_for(inputs)
    assert early.self_generated.record["observations"] < late.self_generated.record["observations"]
