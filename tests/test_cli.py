"""The command line as a user meets it: the shipped inputs, real files written, bad input refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from cml.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """One forecast of the shipped inputs (no PDFs: the render tests cover those)."""
    out = tmp_path_factory.mktemp("pack")
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), "--outputs", str(out), "--no-pdf"])
    assert result.exit_code == 0, result.output
    return out


def test_forecast_writes_the_tables_and_they_read_back(pack: Path) -> None:
    projection = pd.read_csv(pack / "projection.csv")
    assert projection["library_id"].nunique() == 35
    assert projection["financial_year"].max() == "2034/35"
    assert set(projection["actual_or_forecast"]) == {"actual", "forecast"}
    portfolio = pd.read_csv(pack / "portfolio.csv")
    by_year = projection.groupby(["scenario", "financial_year"])["closing_reserves"].sum()
    assert portfolio.set_index(["scenario", "financial_year"])["closing_reserves"].sub(by_year).abs().max() < 0.01


def test_workbook_has_money_formatted_and_headers_frozen(pack: Path) -> None:
    book = load_workbook(pack / "figures.xlsx")
    sheet = book["Projection"]
    assert sheet.freeze_panes == "C3"
    header = [c.value for c in sheet[2]]
    grant = sheet.cell(row=3, column=header.index("Council grant (£)") + 1)
    assert "£#,##0" in grant.number_format
    assert "ILLUSTRATIVE" in sheet["A1"].value


def test_run_json_records_checksums_assumptions_and_passed_checks(pack: Path) -> None:
    run = json.loads((pack / "run.json").read_text())
    assert set(run["inputs"]) >= {"libraries.csv", "accounts.csv", "taper.csv", "assumptions.toml"}
    assert run["assumptions"]["forecast"]["horizon"] == "2034/35"
    assert run["all_checks_passed"] and len(run["checks"]) >= 4
    assert run["illustrative"] is True


def test_bad_input_exits_non_zero_names_the_cell_and_leaves_the_pack(tmp_path: Path, pack: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(pack, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    broken = tmp_path / "inputs"
    shutil.copytree(SHIPPED, broken)
    lines = (broken / "accounts.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",17six\n"
    (broken / "accounts.csv").write_text("".join(lines))
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(broken), "--outputs", str(out), "--no-pdf"])
    assert result.exit_code == 1
    assert "accounts.csv:3: amount: '17six' is not a number" in result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_validate_reports_a_clean_folder() -> None:
    result = CliRunner().invoke(main, ["validate", "--inputs", str(SHIPPED)])
    assert result.exit_code == 0 and "no problems found" in result.output


def test_template_writes_a_return_the_loader_accepts(tmp_path: Path) -> None:
    path = tmp_path / "anstey.xlsx"
    result = CliRunner().invoke(main, ["template", str(path), "--library", "anstey", "--inputs", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert load_workbook(path).sheetnames[:5] == ["Instructions", "Library", "Accounts", "Reserves", "Projection"]


def test_template_for_an_unknown_library_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["template", str(tmp_path / "x.xlsx"), "--library", "nowhere", "--inputs", str(SHIPPED)])
    assert result.exit_code == 2 and "not a library_id" in result.output


@pytest.mark.parametrize("command", ["forecast", "validate", "template", "scenarios", "brief"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_an_unwritable_outputs_folder_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), "--outputs", str(blocker / "out"), "--no-pdf"])
    assert result.exit_code == 4
    assert "cannot write beside" in result.output and "Traceback" not in result.output


def test_a_trustee_what_if_for_one_library(tmp_path: Path) -> None:
    out = tmp_path / "what-if"
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), "--outputs", str(out),
                                       "--library", "anstey", "--scenario", "option_1",
                                       "--set", "levers.cost_change=-0.1"])
    assert result.exit_code == 0, result.output
    scenarios = pd.read_csv(out / "scenarios.csv").set_index(["scenario", "library_id"])
    assert set(scenarios.index.get_level_values("scenario")) == {"baseline", "option_1", "what_if"}
    changed = scenarios.loc["what_if", "horizon_free_reserves"] - scenarios.loc["baseline", "horizon_free_reserves"]
    assert changed["anstey"] > 0
    # Others change only through the shared contingency fund: Anstey claims less, so they can only gain.
    assert (changed.drop("anstey") > -0.01).all()
    assert [p.name for p in (out / "briefings").iterdir()] == ["anstey.pdf"]


def test_an_unknown_setting_in_set_is_located(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), "--outputs", str(tmp_path), "--no-pdf",
                                       "--set", "levers.cost_chnage=-0.1"])
    assert result.exit_code == 2 and "--set: levers.cost_chnage: unknown setting" in result.output


def test_a_scenario_shock_in_an_actual_year_is_refused(tmp_path: Path) -> None:
    """A building failure dated in a year the accounts already cover would be silently ignored."""
    inputs = tmp_path / "inputs"
    shutil.copytree(SHIPPED, inputs)
    text = (inputs / "scenarios.toml").read_text().replace(
        '{ library_id = "anstey", financial_year = "2025/26", cost = 18000 }',
        '{ library_id = "anstey", financial_year = "2019/20", cost = 18000 }')
    (inputs / "scenarios.toml").write_text(text)
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(inputs), "--outputs", str(tmp_path / "out"), "--no-pdf"])
    assert result.exit_code == 1
    assert ("scenarios.toml: building_failures: shocks.building_failures: entry 1: 2019/20 is not a forecast year "
            "for anstey (after 2023/24, up to 2034/35)") in result.output


def test_a_one_off_year_given_as_a_number_is_explained(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), "--outputs", str(tmp_path), "--no-pdf",
                                       "--set", "levers.one_off_cost=100", "--set", "levers.one_off_year=2026"])
    assert result.exit_code == 2
    assert "--set: levers.one_off_year: 2026 is not a financial year written like \"2025/26\"" in result.output


def test_validate_reads_the_scenarios_too(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(SHIPPED, inputs)
    with (inputs / "scenarios.toml").open("a") as handle:
        handle.write('\n[what_if]\ninherits = "baseline"\ndescription = "mine"\n')
    result = CliRunner().invoke(main, ["validate", "--inputs", str(inputs)])
    assert result.exit_code == 1
    assert "scenarios.toml: what_if: this name is kept for `cml forecast --set`" in result.output


def test_template_will_not_overwrite_a_return(tmp_path: Path) -> None:
    path = tmp_path / "anstey.xlsx"
    path.write_bytes(b"a treasurer's filled-in return")
    result = CliRunner().invoke(main, ["template", str(path), "--library", "anstey", "--inputs", str(SHIPPED)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert path.read_bytes() == b"a treasurer's filled-in return"
