"""figures.xlsx as an officer opens it, the CSVs' defence against formulas, and the blank return."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from cml.cli import main
from cml.outputs import tables, workbook_notes, write_csvs
from cml.projection import build_forecast
from cml.scenarios import SCENARIO_FILE, load_scenarios
from cml.workbook import (
    COLUMNS,
    MONEY_FORMAT,
    NOT_REACHED,
    column_spec,
    pennies,
    printed_pages,
    write_workbook,
)

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
HOSTILE = {"anstey": "=HYPERLINK(\"http://evil.example\",\"click\")", "sapcote": "@SUM(A1:A9)"}


@pytest.fixture(scope="module")
def book_path(scenario_forecast, inputs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("book") / "figures.xlsx"
    info = {"version": "9.9.9", "run_at": "2026-12-02T03:00:00+00:00", "inputs_sha256": "ab" * 32, "illustrative": True,
            "latest_accounts_year": "2023/24", "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 32,
            "accounts_stale": True}
    write_workbook(tables(scenario_forecast), path, True, workbook_notes(scenario_forecast, inputs, info, SHIPPED))
    return path


@pytest.fixture(scope="module")
def book(book_path: Path):
    return load_workbook(book_path)


@pytest.fixture(scope="module")
def hostile_tables(inputs):
    """Two shipped libraries named like formulas, and a scenario whose description starts with '-'."""

    def narrow(frame):
        return frame[frame["library_id"].isin(list(HOSTILE))].copy()

    libraries = narrow(inputs.libraries)
    libraries["name"] = libraries["library_id"].map(HOSTILE)
    narrowed = dataclasses.replace(inputs, libraries=libraries, accounts=narrow(inputs.accounts),
                                   reserves=narrow(inputs.reserves), trustee_projections=narrow(inputs.trustee_projections))
    forecast = build_forecast(narrowed, load_scenarios(SHIPPED / SCENARIO_FILE, inputs.assumptions))
    scenarios = forecast.scenarios.copy()
    scenarios["description"] = "-10% costs +cmd|' /C calc'!A0"
    return tables(dataclasses.replace(forecast, scenarios=scenarios))


def width_of(sheet, index: int) -> float:
    """A column's width as written (xlsx groups neighbouring columns of one width)."""
    return next(d.width for d in sheet.column_dimensions.values() if d.min <= index <= d.max)


def test_every_column_of_every_table_has_a_plain_heading(scenario_forecast) -> None:
    for name, frame in tables(scenario_forecast).items():
        unknown = [c for c in frame.columns if c not in COLUMNS and not c.startswith("council_cost_")]
        assert not unknown, f"{name}: add {unknown} to cml.workbook.COLUMNS"


def test_money_headings_carry_the_unit(book) -> None:
    header = [c.value for c in book["Projection"][2]]
    assert {"Free reserves (£)", "Council grant (£)", "Months of cover", "Financial year", "Library"} <= set(header)
    assert "free_reserves" not in header
    assert "Council cost: lease fees (£)" in [c.value for c in book["Portfolio"][2]]


def test_an_unknown_column_or_table_still_gets_a_heading_and_a_format(tmp_path: Path) -> None:
    assert column_spec("lease_years_remaining", pd.Series([1.5])).heading == "Lease years remaining"
    assert column_spec("council_cost_new_thing").heading == "Council cost: new thing (£)"
    assert column_spec("claims_count", pd.Series([3])).kind == "count"
    frames = {"new_table": pd.DataFrame({"library_id": ["anstey"], "years_left_on_deed": [4.25], "granted": [True]})}
    write_workbook(frames, tmp_path / "f.xlsx", False)
    sheet = load_workbook(tmp_path / "f.xlsx")["New table"]
    assert [c.value for c in sheet[1]] == ["Library id", "Years left on deed", "Granted"]
    assert sheet["B2"].value == 4.25 and sheet["C2"].value == "yes"


def test_every_sheet_filters_freezes_and_prints_one_page_wide_with_headers_repeated(book) -> None:
    for name in ["Options", "Scenarios", "Summary", "Portfolio", "Fund claims", "Fund ledger", "Leases", "Projection"]:
        sheet = book[name]
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A2:"), name
        assert sheet.freeze_panes in ("B3", "C3"), name
        assert sheet.page_setup.orientation == "landscape" and sheet.sheet_properties.pageSetUpPr.fitToPage, name
        assert sheet.page_setup.fitToHeight == 0 and sheet.print_title_rows == "$2:$2", name
        widths = [width_of(sheet, index) for index in (1, 2, 3)]
        assert all(6 < width <= 62 for width in widths), (name, widths)
    longest = pd.read_csv(SHIPPED / "libraries.csv")["name"].str.len().max()
    assert width_of(book["Projection"], 2) >= longest


def test_money_is_pounds_in_brackets_and_rounding_noise_is_zero(book) -> None:
    assert list(pennies(pd.Series([-1e-9, -0.004, 0.005, -2.675, 1234.5678]))) == [0.0, 0.0, 0.01, -2.68, 1234.57]
    assert not np.signbit(pennies(pd.Series([-1e-12]))).any()
    sheet = book["Projection"]
    header = [c.value for c in sheet[2]]
    column = header.index("Opening reserves (£)") + 1
    cells = [sheet.cell(row=r, column=column) for r in range(3, sheet.max_row + 1)]
    assert all(c.number_format == MONEY_FORMAT for c in cells)
    assert MONEY_FORMAT == "£#,##0;(£#,##0);£0"
    assert all(c.value == 0 or abs(c.value) >= 0.005 for c in cells)
    assert all(round(c.value, 2) == c.value for c in cells)


def test_years_not_reached_read_the_same_in_every_table(scenario_forecast, book) -> None:
    frames = tables(scenario_forecast)
    assert frames["summary"]["run_out_year"].isna().sum() == 0
    assert NOT_REACHED in set(frames["summary"]["run_out_year"]) and NOT_REACHED in set(frames["scenarios"]["run_out_year"])
    assert frames["options"]["fund_exhausted_in"].isna().sum() == 0
    words = {cell for name in ("Summary", "Scenarios", "Options") for row in book[name].iter_rows(values_only=True)
             for cell in row if isinstance(cell, str) and "horizon" in cell and len(cell) < 25}
    assert words == {NOT_REACHED}


def test_notes_sheet_defines_terms_and_gives_assumptions_with_sources(book) -> None:
    assert book.sheetnames[0] == "Notes"
    rows = {(r[0], r[1]): r[2] for r in book["Notes"].iter_rows(min_row=3, values_only=True)}
    for term in ("Free reserves", "Months of cover", "RAG", "Year free reserves run out"):
        assert ("Definitions", term) in rows
    assert rows[("Assumptions", "growth.costs")].startswith("0.025  (source: cml assumption")
    assert rows[("Assumptions", "forecast.horizon")].startswith("'2034/35'")
    assert rows[("Run", "Inputs SHA-256")] == "ab" * 32
    assert "inherits baseline" in rows[("Scenarios", "option_1")]


def test_text_that_looks_like_a_formula_is_text_in_the_workbook(hostile_tables, tmp_path: Path) -> None:
    write_workbook(hostile_tables, tmp_path / "f.xlsx", False)
    book = load_workbook(tmp_path / "f.xlsx")
    cells = [cell for sheet in book for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    risky = [cell for cell in cells if cell.value.startswith(("=", "@", "-", "+"))]
    assert {cell.value for cell in risky} >= set(HOSTILE.values()) | {"-10% costs +cmd|' /C calc'!A0"}
    assert all(cell.data_type == "s" for cell in risky)
    raw = (tmp_path / "f.xlsx").read_bytes()
    assert b"<f>" not in raw


def test_text_that_looks_like_a_formula_is_defused_in_the_csvs(hostile_tables, tmp_path: Path) -> None:
    write_csvs(hostile_tables, tmp_path)
    for name in ("projection", "summary", "scenarios"):
        names = set(pd.read_csv(tmp_path / f"{name}.csv", dtype=str)["name"])
        assert names == {"'" + value for value in HOSTILE.values()}, name
    options = pd.read_csv(tmp_path / "options.csv", dtype=str)
    assert set(options["description"]) == {"'-10% costs +cmd|' /C calc'!A0"}
    assert hostile_tables["summary"]["name"].iloc[0] in HOSTILE.values()  # the frames themselves are left alone


def test_printed_pages_counts_rows_per_page_with_the_header_repeated() -> None:
    assert printed_pages(1, 2) == 1 and printed_pages(44, 2) == 1 and printed_pages(45, 2) == 2


def test_the_blank_return_has_years_drop_downs_and_instructions(tmp_path: Path) -> None:
    path = tmp_path / "anstey.xlsx"
    result = CliRunner().invoke(main, ["template", str(path), "--library", "ANSTEY", "--inputs", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    book = load_workbook(path)
    assert book.sheetnames[0] == "Instructions" and "inputs/returns/" in " ".join(
        str(r[0]) for r in book["Instructions"].iter_rows(values_only=True))
    assert book["Library"]["B1"].value == "anstey"
    accounts = book["Accounts"]
    rows = list(accounts.iter_rows(min_row=2, values_only=True))
    lines = pd.read_csv(SHIPPED / "lines.csv")["line"]
    assert rows and rows[0][0] == "2024/25" and [r[1] for r in rows[:len(lines)]] == list(lines)
    assert all(r[2] is None for r in rows)
    validations = {str(dv.sqref): dv for dv in accounts.data_validations.dataValidation}
    assert validations["B2:B500"].type == "list" and validations["B2:B500"].formula1 == f"=Lines!$A$2:$A${len(lines) + 1}"
    assert validations["A2:A500"].type == "list" and "2024/25" in validations["A2:A500"].formula1
    assert validations["C2:C500"].type == "decimal"
    assert book["Reserves"]["A2"].value == "2024/25"
