"""Code health of the assumptions themselves (as OpenFisca tests its parameter tree): every number
the model uses from inputs/ names its source."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
SETTING = re.compile(r"^\s*[a-z_]+\s*=\s*[^\[{]")


@pytest.mark.parametrize("name", ["assumptions.toml", "scenarios.toml"])
def test_every_setting_line_carries_a_source_comment(name):
    """Each ``key = value`` line (other than a scenario's description and parent) has a ``#`` comment."""
    bare = [line for line in (INPUTS / name).read_text().splitlines()
            if SETTING.match(line) and "#" not in line and not line.strip().startswith(("description", "inherits"))]
    assert not bare, bare


@pytest.mark.parametrize("name", ["taper.csv", "lines.csv", "one_off_grants.csv"])
def test_every_row_names_its_source(name):
    frame = pd.read_csv(INPUTS / name, dtype=str, keep_default_na=False)
    assert (frame["source"].str.len() > 5).all()


def test_taper_grant_years_run_in_order():
    taper = pd.read_csv(INPUTS / "taper.csv")
    assert taper["grant_year"].tolist() == list(range(1, len(taper) + 1))
