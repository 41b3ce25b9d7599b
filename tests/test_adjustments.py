"""How each scenario changes the lines: leases, options 1-3, closures, trustee levers (seed 000 paras 16-33)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cml.projection import build_forecast
from cml.scenarios import load_scenarios, parse_overrides

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def portfolio(scenario_forecast, scenario: str) -> pd.DataFrame:
    return scenario_forecast.portfolio[scenario_forecast.portfolio["scenario"] == scenario].set_index("financial_year")


def test_option_1_ten_year_lease_means_fewer_extensions_and_more_grant_income(scenario_forecast):
    """Seed 000 paras 28-31: one 10-year lease instead of repeated 5-year rollovers."""
    leases = scenario_forecast.leases
    extensions = leases[leases["fees"] > 0].groupby("scenario").size()
    assert extensions["option_1"] < extensions["baseline"]
    lines = scenario_forecast.lines[scenario_forecast.lines["line"] == "other_grants"].groupby("scenario")["amount"].sum()
    assert lines["option_1"] > lines["baseline"]


def test_option_2_moves_fabric_repairs_of_full_repairing_libraries_to_the_council(scenario_forecast, inputs):
    """Seed 000 para 32: the council would take back the building fabric of 17 libraries."""
    option_2 = portfolio(scenario_forecast, "option_2")
    assert (option_2.loc["2025/26":, "council_cost_fabric_repairs"] > 0).all()
    full = set(inputs.libraries.loc[inputs.libraries["lease_type"] == "full_repairing", "library_id"])
    assert len(full) == 17
    fabric = scenario_forecast.lines.query("scenario == 'option_2' and line == 'building_repairs' and year > 2023")
    assert not set(fabric["library_id"]) & full


def test_option_3_council_takes_about_200000_a_year_of_running_costs(scenario_forecast):
    """Seed 000 para 33: about £200,000 per annum. On the illustrative data it is £170k-£260k (the
    lease fees the libraries paid since 2018/19 leave less of their income for the building)."""
    option_3 = portfolio(scenario_forecast, "option_3")
    assert 170_000 <= option_3.loc["2024/25", "council_cost_running_costs"] <= 260_000
    assert (option_3["libraries_red"].loc["2025/26":] == 0).all()


def test_a_closure_loses_weekly_income_across_all_libraries(scenario_forecast):
    """Seed 000 para 16: about £3,000 a week; 16 weeks = £48,000, then a quarter of a year's income."""
    income = scenario_forecast.projection.groupby(["scenario", "financial_year"])["self_generated_income"].sum()
    lost = income["baseline"] - income["closure_2025"]
    assert lost["2025/26"] == pytest.approx(16 * 3_000, rel=1e-6)
    assert lost["2026/27"] == pytest.approx(0.25 * 52 * 3_000, rel=1e-6)
    assert lost["2027/28"] == pytest.approx(0.0, abs=1e-6)


def test_a_trustee_what_if_changes_only_the_named_library(inputs):
    overrides = parse_overrides(("levers.libraries=['anstey']", "levers.cost_change=-0.2",
                                 "levers.one_off_cost=5000", 'levers.one_off_year="2026/27"'))
    scenarios = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions, overrides)
    chosen = [s for s in scenarios if s.name in ("baseline", "what_if")]
    result = build_forecast(inputs, chosen)
    horizon = result.summary.set_index(["scenario", "library_id"])["horizon_closing_reserves"]
    assert horizon["what_if", "anstey"] != pytest.approx(horizon["baseline", "anstey"])
    assert horizon["what_if", "desford"] == pytest.approx(horizon["baseline", "desford"])
    one_off = result.lines.query("scenario == 'what_if' and line == 'one_off_costs'")
    assert one_off[["library_id", "financial_year", "amount"]].values.tolist() == [["anstey", "2026/27", 5000.0]]


def test_building_failures_are_claimed_from_the_fund_unless_the_council_carries_the_fabric(scenario_forecast):
    failures = scenario_forecast.claims[scenario_forecast.claims["kind"] == "building_failure"]
    assert set(failures["scenario"]) == {"building_failures"}
    with_option_2 = portfolio(scenario_forecast, "option_2_with_failures")
    assert with_option_2["council_cost_fabric_repairs"].sum() > portfolio(scenario_forecast, "option_2")["council_cost_fabric_repairs"].sum()


def test_option_2_leaves_other_leases_with_the_library(inputs):
    """Only full-repairing leases become internal-repairing; an 'other' lease keeps its own building."""
    from cml.projection import scenario_libraries

    option_2 = next(s for s in load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions) if s.name == "option_2")
    changed = scenario_libraries(inputs.libraries, option_2)
    before = inputs.libraries["lease_type"].value_counts()
    after = changed["lease_type"].value_counts()
    assert after["internal_repairing"] == before["internal_repairing"] + before["full_repairing"]
    assert after["other"] == before["other"]
