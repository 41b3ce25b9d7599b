"""The command line's manners: examples that copy and paste, scenarios explained, library ids
forgiven their case, and one exit code per kind of problem (README "Exit codes")."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cml.checks import ModelCheckFailed
from cml.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_the_forecast_help_example_is_printed_as_written_and_parses() -> None:
    result = run("forecast", "--help")
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "cml forecast --library anstey" in line)
    example = "\n".join(lines[start:start + 2])
    assert example.rstrip().endswith("--outputs what-if-anstey")
    assert lines[start].rstrip().endswith("\\")
    words = shlex.split(example.replace("\\\n", " "))
    assert words[:4] == ["cml", "forecast", "--library", "anstey"] and 'levers.one_off_year="2026/27"' in words
    parsed = main.commands["forecast"].make_context("forecast", words[2:])
    assert parsed.params["settings"][-1] == 'levers.one_off_year="2026/27"'


def test_scenarios_lists_what_each_changes_from_its_parent() -> None:
    result = run("scenarios", "--inputs", str(SHIPPED))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "option_1 (from baseline):" in text
    assert "    new lease on top of the unexpired term (years): 10 (instead of 0)" in text
    assert "    council takes the building fabric repairs: yes (instead of no)" in text
    baseline_block = text.split("\n", 1)[0]
    assert baseline_block.startswith("baseline:")


@pytest.mark.parametrize("given", ["ANSTEY", "Anstey", " anstey"])
def test_a_library_id_is_matched_whatever_its_case(given: str, tmp_path: Path) -> None:
    result = run("template", str(tmp_path / "r.xlsx"), "--library", given, "--inputs", str(SHIPPED))
    assert result.exit_code == 0, result.output
    assert "Blank return for anstey" in result.output


def test_an_unknown_library_lists_the_nearest_ids_with_exit_code_2(tmp_path: Path) -> None:
    result = run("brief", "ansty", "--inputs", str(SHIPPED), "--outputs", str(tmp_path / "b"))
    assert result.exit_code == 2
    assert "'ansty' is not a library_id in libraries.csv (did you mean anstey" in result.output
    assert not (tmp_path / "b").exists()


def test_an_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    result = run("forecast", "--inputs", str(SHIPPED), "--outputs", str(tmp_path), "--no-pdf", "--scenario", "option1")
    assert result.exit_code == 2 and "did you mean option_1" in result.output


def test_bad_input_files_exit_1_and_a_failed_check_exits_3(tmp_path: Path, monkeypatch) -> None:
    result = run("validate", "--inputs", str(tmp_path / "no-such-folder"))
    assert result.exit_code == 1

    def failing(inputs, scenarios, steps, recommendation):
        raise ModelCheckFailed("reserves_roll_forward: anstey 2030/31 differs by 12.00")

    monkeypatch.setattr("cml.cli.build_forecast", failing)
    result = run("forecast", "--inputs", str(SHIPPED), "--outputs", str(tmp_path / "out"), "--no-pdf")
    assert result.exit_code == 3 and "reconciliation check failed" in result.output
    assert not (tmp_path / "out").exists()


def test_an_unknown_option_is_exit_code_2() -> None:
    assert run("forecast", "--no-such-option").exit_code == 2
