"""The tables officers read reconcile to the libraries they are built from."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def test_portfolio_council_cost_is_the_sum_of_its_components(scenario_forecast):
    components = [c for c in scenario_forecast.portfolio.columns if c.startswith("council_cost_") and c != "council_cost_total"]
    assert (scenario_forecast.portfolio[components].sum(axis=1) - scenario_forecast.portfolio["council_cost_total"]).abs().max() < 1e-6


def test_options_table_reconciles_to_the_libraries(scenario_forecast):
    """The options appraisal's council cost is the sum of the libraries' council cost, per scenario."""
    from cml.outputs import option_comparison

    options = option_comparison(scenario_forecast).set_index("scenario")
    per_library = scenario_forecast.summary.groupby("scenario")["council_cost"].sum()
    assert (options["council_cost_total"] - per_library.reindex(options.index)).abs().max() < 0.01
    assert options.loc["option_3", "fund_exhausted_in"] == "not within horizon"
    assert options.loc["option_1", "change_from_baseline"] > 0
