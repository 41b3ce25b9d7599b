"""Every kind of bad input gets a located message (file:row: column: reason), all at once."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from cml.errors import InputError
from cml.inputs import Inputs, load_inputs
from cml.returns import write_template

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def edit_line(name: str, line_number: int, old: str, new: str) -> Callable[[Path], None]:
    """Replace text on one line (1 = header) of an input file."""

    def apply(folder: Path) -> None:
        path = folder / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        assert old in lines[line_number - 1], (old, lines[line_number - 1])
        lines[line_number - 1] = lines[line_number - 1].replace(old, new, 1)
        path.write_text("".join(lines), encoding="utf-8")

    return apply


def set_cell(name: str, line_number: int, column: str, value: str) -> Callable[[Path], None]:
    """Overwrite one cell of a CSV (line 1 is the header), leaving every other line as it was."""

    def apply(folder: Path) -> None:
        path = folder / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = lines[0].rstrip("\n").split(",")
        cells = lines[line_number - 1].rstrip("\n").split(",")
        cells[header.index(column)] = value
        lines[line_number - 1] = ",".join(cells) + "\n"
        path.write_text("".join(lines), encoding="utf-8")

    return apply


def add_to_cell(name: str, line_number: int, column: str, amount: float) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        value = float(frame.loc[line_number - 2, column]) + amount
        set_cell(name, line_number, column, f"{value:.2f}")(folder)

    return apply


def duplicate_line(name: str, line_number: int) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines.insert(line_number, lines[line_number - 1])
        path.write_text("".join(lines), encoding="utf-8")

    return apply


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def drop_column(name: str, column: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        frame.drop(columns=[column]).to_csv(folder / name, index=False)

    return apply


def wrong_sheets_workbook(folder: Path) -> None:
    (folder / "returns").mkdir()
    book = Workbook()
    book.active.title = "Sheet1"
    book.save(folder / "returns" / "anstey.xlsx")


def append_line(name: str, text: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        with (folder / name).open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

    return apply


def drop_reserves_year(library_id: str, year: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / "reserves.csv", dtype=str, keep_default_na=False)
        keep = ~((frame["library_id"] == library_id) & (frame["financial_year"] == year))
        frame[keep].to_csv(folder / "reserves.csv", index=False)

    return apply


def copy_last_reserves_row_to(year: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / "reserves.csv", dtype=str, keep_default_na=False)
        last = frame[frame["library_id"] == "anstey"].iloc[[-1]].assign(financial_year=year)
        pd.concat([frame, last]).to_csv(folder / "reserves.csv", index=False)

    return apply


def insert_blank_line_then_break(folder: Path) -> None:
    """A blank line after line 3, then a bad amount on what is now line 11 of the file."""
    path = folder / "accounts.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(3, "\n")
    cells = lines[10].rstrip("\n").split(",")
    lines[10] = ",".join([*cells[:-1], "abc"]) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def two_returns_for_one_library(folder: Path) -> None:
    shipped = load_inputs(SHIPPED)
    for name in ("anstey.xlsx", "anstey-v2.xlsx"):
        blank_return(folder, shipped, name)


def zero_byte_workbook(folder: Path) -> None:
    (folder / "returns").mkdir()
    (folder / "returns" / "anstey.xlsx").write_bytes(b"")


CASES = {
    "missing file": (lambda f: (f / "accounts.csv").unlink(), "accounts.csv: -: file is missing"),
    "missing column": (drop_column("accounts.csv", "amount"), "accounts.csv:1: amount: required column is missing"),
    "non-numeric amount": (set_cell("accounts.csv", 2, "amount", "46g8"), "accounts.csv:2: amount: '46g8' is not a number"),
    "negative amount": (set_cell("accounts.csv", 3, "amount", "-176.60"), "accounts.csv:3: amount: '-176.60' must not be negative"),
    "unknown library": (set_cell("accounts.csv", 4, "library_id", "anstee"), "accounts.csv:4: library_id: 'anstee' is not a known library_id"),
    "duplicate row": (duplicate_line("accounts.csv", 2), "accounts.csv:3: line: duplicate row (library_id=anstey, financial_year=2015/16, line=council_grant) repeats row 2"),
    "malformed financial year": (set_cell("reserves.csv", 2, "financial_year", "2015-16"), "reserves.csv:2: financial_year: '2015-16' is not a financial year written like 2018/19"),
    "malformed date": (set_cell("libraries.csv", 2, "transfer_date", "01/10/2015"), "libraries.csv:2: transfer_date: '01/10/2015' is not a valid date written like 2015-10-01"),
    "transfer after horizon": (set_cell("libraries.csv", 2, "transfer_date", "2040-10-01"), "libraries.csv:2: transfer_date: '2040-10-01' is after the forecast horizon 2034/35"),
    "unknown line": (set_cell("accounts.csv", 3, "line", "coffee"), "accounts.csv:3: line: 'coffee' is not a known line"),
    "unknown lease type": (set_cell("libraries.csv", 2, "lease_type", "full"), "libraries.csv:2: lease_type: 'full' is not one of full_repairing, internal_repairing, other"),
    "empty file": (write_bytes("reserves.csv", b""), "reserves.csv: -: file is empty"),
    "header only": (write_bytes("reserves.csv", b"library_id,financial_year\n"), "reserves.csv: -: file has a header but no rows"),
    "not UTF-8": (write_bytes("taper.csv", "grant_year,percent_of_running_costs,source\n1,100,Caf\u00e9\n".encode("latin-1")), "taper.csv:2: -: file is not UTF-8"),
    "workbook with wrong sheets": (wrong_sheets_workbook, "returns/anstey.xlsx: -: workbook lacks sheet(s) Library, Accounts, Reserves, Projection"),
    "unknown assumption": (edit_line("assumptions.toml", 15, "base_years = 1", "base_yeers = 1"), "assumptions.toml: forecast.base_yeers: unknown setting"),
    "assumption of wrong type": (edit_line("assumptions.toml", 34, "costs = 0.025", 'costs = "3%"'), "assumptions.toml: growth.costs: '3%' should be a number"),
    "accounts without reserves": (append_line("accounts.csv", "anstey,2024/25,cafe,100.00"),
                                  "accounts.csv:*: financial_year: anstey has accounts for 2024/25 but no closing reserves for it in reserves.csv"),
    "reserves without accounts": (copy_last_reserves_row_to("2024/25"),
                                  "reserves.csv:*: financial_year: anstey has closing reserves for 2024/25 but no accounts for that year"),
    "a gap in the years of reserves": (drop_reserves_year("anstey", "2020/21"),
                                       "reserves.csv:7: financial_year: 2021/22 does not follow the library's previous year"),
    "actuals_to before a library transferred": (edit_line("assumptions.toml", 10, 'actuals_to = ""', 'actuals_to = "2015/16"'),
                                                "assumptions.toml: forecast.actuals_to: 2015/16 is before the first year of reserves"),
    "horizon before the last actual year": (edit_line("assumptions.toml", 7, 'horizon = "2034/35"', 'horizon = "2022/23"'),
                                            "assumptions.toml: forecast.horizon: 2022/23 is not after the last actual year 2023/24"),
    "library id that is not a slug": (set_cell("libraries.csv", 2, "library_id", "Anstey Library"),
                                      "libraries.csv:2: library_id: 'Anstey Library' should be lower-case letters"),
    "an infinite amount": (set_cell("accounts.csv", 2, "amount", "inf"), "accounts.csv:2: amount: 'inf' is not a number"),
    "a zero-byte workbook": (zero_byte_workbook, "returns/anstey.xlsx: -: not an Excel workbook"),
    "blank lines still counted": (insert_blank_line_then_break, "accounts.csv:11: amount: 'abc' is not a number"),
    "unquoted thousands comma": (set_cell("accounts.csv", 3, "amount", "1,228.93"),
                                 "accounts.csv:3: -: 5 values where the header has 4: a number written with a thousands comma"),
    "taper over 100 per cent": (set_cell("taper.csv", 2, "percent_of_running_costs", "120"),
                                "taper.csv:2: percent_of_running_costs: '120' is more than 100 per cent"),
    "growth that is not a number": (edit_line("assumptions.toml", 34, "costs = 0.025", "costs = nan"),
                                    "assumptions.toml: growth.costs: nan should be a finite number"),
    "dated cost inflation as a percentage": (edit_line("assumptions.toml", 57, '"2025/26" = 0.035', '"2025/26" = 3.5'),
                                             "assumptions.toml: growth.costs_by_year.2025/26: 3.5 should be a rate from -0.5 to 1.0"),
    "dated cost inflation for a mistyped year": (edit_line("assumptions.toml", 57, '"2025/26" = 0.035', '"2025/2026" = 0.035'),
                                                 "assumptions.toml: growth.costs_by_year.2025/2026: '2025/2026' is not a financial year"),
    "two returns for one library": (two_returns_for_one_library,
                                    "returns/anstey.xlsx[Library]:1: B1: 'anstey' also has the return returns/anstey-v2.xlsx"),
    "negative reserves policy": (set_cell("libraries.csv", 3, "reserves_target_months", "-6"),
                                 "libraries.csv:3: reserves_target_months: '-6' must not be negative"),
    "reserves that do not reconcile": (add_to_cell("reserves.csv", 3, "unrestricted", 100.0), "reserves.csv:3: unrestricted: closing funds"),
    "a lease of no years": (set_cell("libraries.csv", 5, "lease_years", "0"), "libraries.csv:5: lease_years: '0' must be at least 1"),
    "trustees' year before the transfer": (set_cell("trustee_projections.csv", 3, "financial_year", "2010/11"),
                                           "trustee_projections.csv:3: financial_year: 2010/11 is before anstey transferred"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_located(case: str, inputs_dir: Path) -> None:
    breaks, expected = CASES[case]
    breaks(inputs_dir)
    with pytest.raises(InputError) as caught:
        load_inputs(inputs_dir)
    messages = [str(p) for p in caught.value.problems]
    matches = (lambda m: fnmatch(m, expected + "*")) if "*" in expected else (lambda m: m.startswith(expected))
    assert any(matches(m) for m in messages), messages


def test_every_problem_is_reported_not_just_the_first(inputs_dir: Path) -> None:
    set_cell("accounts.csv", 2, "amount", "abc")(inputs_dir)
    set_cell("accounts.csv", 5, "line", "raffle")(inputs_dir)
    set_cell("libraries.csv", 3, "lease_type", "leasehold")(inputs_dir)
    with pytest.raises(InputError) as caught:
        load_inputs(inputs_dir)
    files = {(p.file, p.row) for p in caught.value.problems}
    assert {("accounts.csv", 2), ("libraries.csv", 3)} <= files


def test_shipped_inputs_are_valid() -> None:
    inputs = load_inputs(SHIPPED)
    assert len(inputs.libraries) == 35
    assert inputs.illustrative


def blank_return(folder: Path, shipped: Inputs, name: str = "anstey.xlsx") -> tuple[Path, Workbook]:
    """A blank return for Anstey in ``folder/returns/``, opened for a test to fill in."""
    (folder / "returns").mkdir(exist_ok=True)
    path = folder / "returns" / name
    write_template(path, "anstey", shipped.lines)
    return path, load_workbook(path)


def test_an_annual_return_replaces_the_csv_rows_it_covers(inputs_dir: Path) -> None:
    """A treasurer's workbook for 2023/24 overrides the CSV figures for that library and year."""
    shipped = load_inputs(inputs_dir)
    path, book = blank_return(inputs_dir, shipped)
    accounts = shipped.accounts[(shipped.accounts["library_id"] == "anstey") & (shipped.accounts["year"] == 2023)]
    for row in accounts.itertuples():
        book["Accounts"].append(["2023/24", row.line, row.amount + (100.0 if row.line == "cafe" else 0.0)])
    reserves = shipped.reserves[(shipped.reserves["library_id"] == "anstey") & (shipped.reserves["year"] == 2023)].iloc[0]
    book["Reserves"].append(["2023/24", reserves.unrestricted + 100.0, reserves.designated, reserves.fixed_assets,
                             reserves.restricted])
    book["Projection"].append(["2024/25", 3000, 4000, reserves.unrestricted + reserves.restricted - 900])
    book.save(path)
    loaded = load_inputs(inputs_dir)
    cafe = loaded.accounts.query("library_id == 'anstey' and year == 2023 and line == 'cafe'")["amount"]
    assert cafe.tolist() == [pytest.approx(accounts.query("line == 'cafe'")["amount"].iloc[0] + 100.0)]
    assert len(loaded.accounts) == len(shipped.accounts)
    trustees = loaded.trustee_projections.query("library_id == 'anstey' and year == 2024")
    assert trustees["income"].tolist() == [3000.0]


def test_a_bad_cell_in_a_return_names_the_sheet_and_excel_row(inputs_dir: Path) -> None:
    path, book = blank_return(inputs_dir, load_inputs(inputs_dir))
    book["Accounts"].append(["2023/24", "cafe", "lots"])
    book.save(path)
    with pytest.raises(InputError) as caught:
        load_inputs(inputs_dir)
    assert "returns/anstey.xlsx[Accounts]:2: amount: 'lots' is not a number" in [str(p) for p in caught.value.problems]
