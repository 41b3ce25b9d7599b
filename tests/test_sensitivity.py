"""What moves the answer (cml.sensitivity, sensitivity.toml): the comparison on a hand-worked
case, a zero step that changes nothing through the whole model, the signs a treasurer expects,
and bad step files named by file, step and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cml.cli import main
from cml.errors import InputError
from cml.projection import scenario_runs
from cml.scenarios import BASELINE, SENSITIVITY_FILE, load_scenarios, load_steps
from cml.sensitivity import run_out_and_horizon, sensitivity_table

from tests.conftest import SHIPPED


@pytest.fixture(scope="module")
def baseline(inputs):
    return load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]


def steps_from(tmp_path: Path, text: str, baseline):
    path = tmp_path / SENSITIVITY_FILE
    path.write_text(text, encoding="utf-8")
    return load_steps(path, baseline)


def test_changes_are_against_the_baseline_and_a_run_out_past_the_horizon_is_a_floor(baseline, tmp_path):
    """Horizon 2034/35. Library a runs out in 2028/29 on the baseline and in 2026/27 with the
    step: 2 years earlier. Library b does not run out by the horizon on the baseline (counted as
    2035/36) and runs out in 2033/34 with the step: at least 2 years earlier. Horizon reserves
    a: -1,000 -> -4,000 (-3,000); b: 500 -> -200 (-700)."""
    (run,) = steps_from(tmp_path, '[x]\nlabel = "X"\nsetting = "lease.library_fees"\nstep = 0\nsource = "test"\n', baseline)
    before = pd.DataFrame({"run_out": [2028.0, np.nan], "horizon_free_reserves": [-1000.0, 500.0]}, index=["a", "b"])
    after = pd.DataFrame({"run_out": [2026.0, 2033.0], "horizon_free_reserves": [-4000.0, -200.0]}, index=["a", "b"])
    table = sensitivity_table(before, [(run, after)], 2034).set_index("library_id")
    assert table["run_out_change_years"].tolist() == [-2.0, -2.0]
    assert table["beyond_horizon"].tolist() == [False, True]
    assert table["run_out_year"].tolist() == ["2026/27", "2033/34"]
    assert table["horizon_change"].tolist() == [-3000.0, -700.0]


def test_a_zero_step_runs_one_side_and_changes_nothing_through_the_whole_model(inputs, baseline, tmp_path):
    """A step of nil on income growth (an assumption the fitted model uses, so it is refitted):
    one side only (the down side would repeat it), and every library's change is exactly nil."""
    runs = steps_from(tmp_path, '[g]\nlabel = "Growth"\nsetting = "growth.income"\nstep = 0\nsource = "test"\n',
                      baseline)
    assert [r.direction for r in runs] == ["up"]
    projected = scenario_runs(inputs, [baseline, runs[0].scenario])
    horizon = int(projected[BASELINE].projection["year"].max())
    table = sensitivity_table(run_out_and_horizon(projected[BASELINE].projection),
                              [(runs[0], run_out_and_horizon(projected[runs[0].scenario.name].projection))], horizon)
    assert len(table) == len(inputs.libraries)
    assert (table["horizon_change"] == 0).all() and (table["run_out_change_years"] == 0).all()


def test_shipped_steps_move_reserves_the_way_a_treasurer_expects(scenario_forecast):
    """Higher income growth never lowers a library's horizon reserves and lower never raises them;
    higher cost inflation and a repair never raise them; a side that would leave the setting's
    range is not run (no negative repair, no negative weeks closed)."""
    table = scenario_forecast.sensitivity.set_index(["step", "direction"])
    assert (table.loc[("income_growth", "up"), "horizon_change"] > 0).all()
    assert (table.loc[("income_growth", "down"), "horizon_change"] < 0).all()
    assert (table.loc[("cost_inflation", "up"), "horizon_change"] < 0).all()
    assert (table.loc[("repair", "up"), "horizon_change"] < -6000 + 1).all()  # the repair and the interest it no longer earns
    assert ("repair", "down") not in table.index and ("closure", "down") not in table.index
    east_goscote = table[table["library_id"] == "east-goscote"]
    assert east_goscote.loc[("repair", "up"), "run_out_change_years"] <= 0


@pytest.mark.parametrize("text, where, reason", [
    ('[x]\nlabel = "X"\nsetting = "growth.incme"\nstep = 0.01\nsource = "s"\n', "x: setting", "is not a setting"),
    ('[x]\nlabel = "X"\nsetting = "growth.income"\nstep = "1%"\nsource = "s"\n', "x: step", "should be a number"),
    ('[x]\nsetting = "growth.income"\nstep = 0.01\nsource = "s"\n', "x: label", "missing"),
    ('[x]\nlabel = "X"\nsetting = "levers.one_off_year"\nstep = 1\nsource = "s"\n', "x: setting", "is not a number"),
    ('[x]\nlabel = "X"\nsetting = "shocks.closure_weeks"\nstep = 4\nsource = "s"\nwith = { "shocks.closure_year" = "2025" }\n',
     "x: with: shocks.closure_year", "is not a financial year"),
    ('[x]\nlabel = "X"\nsetting = "growth.income"\nstep = 0.01\nsource = "s"\nsize = 3\n', "x: size", "unknown key"),
    ('x = 3\n', "x", "should be a table"),
])
def test_a_bad_step_is_named_by_file_step_and_key(baseline, tmp_path, text, where, reason):
    with pytest.raises(InputError) as caught:
        steps_from(tmp_path, text, baseline)
    problem = caught.value.problems[0]
    assert (problem.file, problem.column) == (SENSITIVITY_FILE, where) and reason in problem.reason


def test_validate_reports_a_bad_sensitivity_file_and_a_step_dated_outside_the_forecast(inputs_dir: Path):
    (inputs_dir / SENSITIVITY_FILE).write_text('[x]\nlabel = "X"\nsetting = "growth.income"\nstep = true\nsource = "s"\n',
                                               encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--inputs", str(inputs_dir)])
    assert result.exit_code == 1 and "sensitivity.toml" in result.output and "x: step" in result.output
    (inputs_dir / SENSITIVITY_FILE).write_text(
        '[r]\nlabel = "R"\nsetting = "levers.one_off_cost"\nstep = 100\nsource = "s"\nwith = { "levers.one_off_year" = "2019/20" }\n',
        encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--inputs", str(inputs_dir)])
    assert result.exit_code == 1 and "sensitivity.toml" in result.output and "levers.one_off_year" in result.output


def test_the_portfolio_sensitivity_counts_the_libraries_of_the_library_table(scenario_forecast):
    """The cabinet report's "libraries run out" per step and side is the count of libraries whose
    run-out year the per-library table gives, and the baseline count is the summary's."""
    by_library = scenario_forecast.sensitivity
    counted = by_library[by_library["run_out_year"].notna()].groupby(["step", "direction"]).size()
    portfolio = scenario_forecast.portfolio_sensitivity.set_index(["step", "direction"])
    assert portfolio["libraries_running_out"].to_dict() == counted.reindex(portfolio.index, fill_value=0).to_dict()
    summary = scenario_forecast.summary
    baseline_count = int(summary.loc[summary["scenario"] == BASELINE, "run_out_year"].notna().sum())
    assert (portfolio["libraries_running_out_baseline"] == baseline_count).all()
    # interim provision is the council's cost of a closed library: it moves the council's cost, not the libraries
    assert portfolio.loc[("interim_provision", "up"), "council_cost_change"] > 0
    assert portfolio.loc[("interim_provision", "up"), "libraries_running_out_change"] == 0
    assert (by_library.loc[by_library["step"] == "interim_provision", "horizon_change"] == 0).all()


def test_a_negative_step_is_refused(baseline, tmp_path):
    from cml.errors import InputError
    with pytest.raises(InputError, match="should be 0 or more"):
        steps_from(tmp_path, '[r]\nlabel = "Repair"\nsetting = "lease.library_fees"\nstep = -6000\nsource = "s"\n', baseline)


def test_a_step_out_of_range_both_ways_is_refused_not_dropped(baseline, tmp_path):
    """Closure weeks run 0 to 52: a step of 400 from 0 is below nil one way and more than a year the
    other, so neither side runs; it was left out of the pack without a word."""
    from cml.errors import InputError
    with pytest.raises(InputError, match="out of its range both ways"):
        steps_from(tmp_path, '[c]\nlabel = "Closed"\nsetting = "shocks.closure_weeks"\nstep = 400\nsource = "s"\n'
                   'with = { "shocks.closure_year" = "2025/26" }\n', baseline)
