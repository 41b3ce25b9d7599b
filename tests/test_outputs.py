"""The tables officers read reconcile to the libraries they are built from."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def test_portfolio_council_cost_is_the_sum_of_its_components(scenario_forecast):
    components = [c for c in scenario_forecast.portfolio.columns if c.startswith("council_cost_") and c != "council_cost_total"]
    assert (scenario_forecast.portfolio[components].sum(axis=1) - scenario_forecast.portfolio["council_cost_total"]).abs().max() < 1e-6
