"""Shared fixtures: the shipped inputs, and one forecast of every shipped scenario (built once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cml.inputs import load_inputs
from cml.projection import build_forecast
from cml.scenarios import (RECOMMENDATION_FILE, SCENARIO_FILE, SENSITIVITY_FILE, load_recommendation, load_scenarios,
                           load_steps)

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped inputs that a test may break."""
    target = tmp_path / "inputs"
    shutil.copytree(SHIPPED, target)
    return target


@pytest.fixture(scope="session")
def inputs():
    return load_inputs(SHIPPED)


@pytest.fixture(scope="session")
def scenario_forecast(inputs):
    scenarios = load_scenarios(SHIPPED / SCENARIO_FILE, inputs.assumptions)
    return build_forecast(inputs, scenarios, load_steps(SHIPPED / SENSITIVITY_FILE, scenarios[0]),
                          load_recommendation(SHIPPED / RECOMMENDATION_FILE, scenarios))
