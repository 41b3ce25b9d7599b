"""The projection against golden figures from the seeds and figures checked by hand."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cml.checks import reserves_corkscrew
from cml.projection import build_forecast as build_all
from cml.projection import option_comparison
from cml.scenarios import load_scenarios

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
CASES = tomllib.loads((Path(__file__).parent / "cases" / "hand_checked.toml").read_text())["case"]


@pytest.fixture(scope="module")
def forecast(inputs):
    return build_forecast(inputs)


def build_forecast(inputs):
    """The baseline scenario alone, with the given inputs' assumptions."""
    baseline = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]
    return build_all(inputs, [replace(baseline, assumptions=inputs.assumptions)])


def with_assumptions(inputs, **changes):
    return replace(inputs, assumptions=replace(inputs.assumptions, **changes))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['library_id']}-{c['financial_year']}")
def test_hand_checked_figures(forecast, case):
    row = forecast.projection.query(
        "library_id == @case['library_id'] and financial_year == @case['financial_year']").iloc[0]
    for column in ("income", "expenditure", "closing_reserves", "free_reserves", "months_of_cover"):
        assert row[column] == pytest.approx(case[column], abs=case["tolerance"]), column


def test_contingency_grant_totals_58000(inputs):
    """Seed 000 para 18: the 2020/21 one-off grant of 20% of running costs was £58,000 in total."""
    early = build_forecast(with_assumptions(inputs, actuals_to=2019))
    paid = early.lines.query("line == 'contingency_grant' and financial_year == '2020/21'")["amount"].sum()
    assert paid == pytest.approx(58_000.0)


def test_every_2015_16_transfer_has_its_last_grant_in_2021_22(forecast):
    """Seed 000 para 14 / domain.md: libraries transferring in 2015/16 receive their last grant in 2021/22."""
    libraries = forecast.libraries
    early = libraries[pd.to_datetime(libraries["transfer_date"]) < "2016-04-01"]
    assert len(early) >= 18
    assert set(early["last_grant_year"]) == {"2021/22"}


def test_a_2019_20_cut_off_forecasts_the_grants_the_accounts_later_showed(inputs):
    """Re-running the forecast the 2020 review could have made: grants are known, so they match."""
    early = build_forecast(with_assumptions(inputs, actuals_to=2019))
    forecast_grant = early.projection.query("actual_or_forecast == 'forecast' and year <= 2023")
    actual = inputs.accounts.query("line == 'council_grant' and year >= 2020 and year <= 2023")
    by_year = actual.groupby("year")["amount"].sum()
    forecast_by_year = forecast_grant.groupby("year")["council_grant"].sum()
    assert forecast_by_year.round(2).to_dict() == by_year.reindex(forecast_by_year.index, fill_value=0.0).round(2).to_dict()


def test_all_libraries_last_through_2021_22(forecast):
    """Seed 000 para 21: all CMLs had sufficient reserves through 2021-22."""
    through = forecast.projection.query("year <= 2021")
    assert (through["free_reserves"] > 0).all()


def test_run_out_year_is_the_first_year_free_reserves_go_negative(forecast):
    summary = forecast.summary.set_index("library_id")
    for library_id, rows in forecast.projection.groupby("library_id"):
        negative = rows.loc[rows["free_reserves"] < 0, "financial_year"]
        expected = negative.iloc[0] if len(negative) else None
        assert summary.loc[library_id, "run_out_year"] == expected


def test_rag_follows_the_thresholds(forecast, inputs):
    rows = forecast.projection
    red = inputs.assumptions.red_below_months
    assert (rows.loc[rows["months_of_cover"] < red, "rag"] == "Red").all()
    assert (rows.loc[rows["rag"] == "Green", "months_of_cover"] >= inputs.assumptions.amber_below_months).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cost_growth=st.floats(min_value=-0.05, max_value=0.15),
    income_growth=st.floats(min_value=-0.05, max_value=0.15),
    base_years=st.integers(min_value=1, max_value=5),
    actuals_to=st.sampled_from([None, 2018, 2019, 2021]),
)
def test_reserves_roll_forward_whatever_the_assumptions(inputs, cost_growth, income_growth, base_years, actuals_to):
    """closing = opening + income - expenditure and next opening = this closing, for any settings."""
    changed = with_assumptions(inputs, cost_growth=cost_growth, income_growth=income_growth,
                               base_years=base_years, actuals_to=actuals_to)
    forecast = build_forecast(changed)
    assert reserves_corkscrew(forecast.projection).abs().max() < 1e-6
    portfolio_total = forecast.portfolio["closing_reserves"].sum()
    assert portfolio_total == pytest.approx(forecast.projection["closing_reserves"].sum())


def test_options_table_reconciles_to_the_libraries(scenario_forecast):
    """The options appraisal's council cost is the sum of the libraries' council cost, per scenario."""
    options = option_comparison(scenario_forecast).set_index("scenario")
    per_library = scenario_forecast.summary.groupby("scenario")["council_cost"].sum()
    assert (options["council_cost_total"] - per_library.reindex(options.index)).abs().max() < 0.01
    assert options.loc["option_3", "fund_exhausted_in"] is None
    assert options.loc["option_1", "change_from_baseline"] > 0
