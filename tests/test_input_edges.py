"""Issue 12: files as volunteers send them. Every shape a spreadsheet exports is either read right
(with a warning naming what was normalised) or refused as ``file:row: column: reason``; never a
number silently read as a different number."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cml.errors import InputError
from cml.inputs import load_inputs

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    target = tmp_path / "inputs"
    shutil.copytree(SHIPPED, target)
    return target


def rewrite(name: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """Apply ``change`` to the lines (without line ends) of one input file."""

    def apply(folder: Path) -> None:
        path = folder / name
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(change(lines)) + "\n", encoding="utf-8")

    return apply


def cell(name: str, line: int, column: str, value: str) -> Callable[[Path], None]:
    """Set one cell (line 1 is the header) in a file with no quoted commas on that line."""

    def change(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        cells = lines[line - 1].split(",")
        cells[header.index(column)] = value
        lines[line - 1] = ",".join(cells)
        return lines

    return rewrite(name, change)


def frame_edit(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        edit(frame).to_csv(folder / name, index=False)

    return apply


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_inputs(folder)
    return [str(p) for p in caught.value.problems]


def assert_refused(folder: Path, expected: str) -> None:
    messages = problems_of(folder)
    assert any(m.startswith(expected) for m in messages), messages


# ---------------------------------------------------------------------------------------------
# 1. Shapes of CSV that spreadsheets export

def trailing_comma_on_every_row(lines: list[str]) -> list[str]:
    return [lines[0]] + [line + "," for line in lines[1:]]


def thousands_on_every_row(lines: list[str]) -> list[str]:
    """accounts.csv as a spreadsheet writes 8,578.00 unquoted: every row one field too long."""
    out = [lines[0]]
    for line in lines[1:]:
        *cells, amount = line.split(",")
        whole, pence = amount.split(".")
        out.append(",".join([*cells, f"{int(whole):,}.{pence}"]) if int(whole) >= 1000 else ",".join([*cells, f"0,{amount}"]))
    return out


def semicolons_with_decimal_commas(lines: list[str]) -> list[str]:
    return [line.replace(",", ";") if i == 0 else ";".join(line.split(",")[:-1] + [line.split(",")[-1].replace(".", ",")])
            for i, line in enumerate(lines)]


SHAPES_REFUSED = {
    "unquoted thousands on every row": (rewrite("accounts.csv", thousands_on_every_row),
                                        "accounts.csv:2: -: 5 values where the header has 4: a number written with a thousands comma"),
    "semicolons and decimal commas": (rewrite("accounts.csv", semicolons_with_decimal_commas),
                                      "accounts.csv:1: -: values are separated by ';', not ','"),
    "Excel's sep=; line": (rewrite("accounts.csv", lambda lines: ["sep=;", *semicolons_with_decimal_commas(lines)]),
                           "accounts.csv:1: -: the file says its values are separated by ';'"),
    "a column repeated once spaces are trimmed": (rewrite("accounts.csv", lambda lines: [lines[0] + ", amount "] + [
        line + ",1" for line in lines[1:]]), "accounts.csv:1: amount: column appears more than once in the header (once spaces are trimmed)"),
    "a column repeated exactly": (rewrite("taper.csv", lambda lines: [lines[0] + ",source"] + [line + ",x" for line in lines[1:]]),
                                  "taper.csv:1: source: column appears more than once in the header"),
    "an unquoted decimal comma": (cell("libraries.csv", 2, "original_running_costs", "5479,93"),
                                  "libraries.csv:2: -: 10 values where the header has 9"),
    "one row too long": (rewrite("libraries.csv", lambda lines: lines[:3] + [lines[3] + ",extra"] + lines[4:]),
                         "libraries.csv:4: -: 10 values where the header has 9"),
    "an unclosed quote": (rewrite("taper.csv", lambda lines: lines[:2] + ['3,60,"never closed'] + lines[3:]),
                          "taper.csv:"),
}


@pytest.mark.parametrize("case", SHAPES_REFUSED)
def test_a_csv_shape_that_could_be_misread_is_refused(case: str, inputs_dir: Path) -> None:
    breaks, expected = SHAPES_REFUSED[case]
    breaks(inputs_dir)
    assert_refused(inputs_dir, expected)


SHAPES_ACCEPTED = {
    "a trailing comma on every row": (rewrite("accounts.csv", trailing_comma_on_every_row),
                                      "accounts.csv: every row ends with an extra comma"),
    "a trailing comma on the header too": (rewrite("reserves.csv", lambda lines: [line + "," for line in lines]),
                                           "reserves.csv: the header ends with an empty column"),
    "Excel's sep=, first line": (rewrite("accounts.csv", lambda lines: ["sep=,", *lines]),
                                 "accounts.csv: the first line 'sep=,' (added by Excel) was skipped"),
    "a UTF-8 BOM on a CSV": (lambda f: (f / "taper.csv").write_bytes(b"\xef\xbb\xbf" + (f / "taper.csv").read_bytes()), None),
    "a UTF-8 BOM on assumptions.toml": (lambda f: (f / "assumptions.toml").write_bytes(
        b"\xef\xbb\xbf" + (f / "assumptions.toml").read_bytes()), None),
    "Windows line ends": (lambda f: (f / "libraries.csv").write_bytes((f / "libraries.csv").read_bytes().replace(b"\n", b"\r\n")), None),
}


@pytest.mark.parametrize("case", SHAPES_ACCEPTED)
def test_a_harmless_csv_shape_is_read_the_same_with_a_warning(case: str, inputs_dir: Path, inputs) -> None:
    changes, warning = SHAPES_ACCEPTED[case]
    changes(inputs_dir)
    loaded = load_inputs(inputs_dir)
    for name in ("libraries", "accounts", "reserves", "taper", "one_off_grants"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(inputs, name))
    assert loaded.warnings == (() if warning is None else (warning + loaded.warnings[0][len(warning):],))
    if warning:
        assert loaded.warnings[0].startswith(warning)


def test_a_row_number_counts_the_sep_line(inputs_dir: Path) -> None:
    cell("accounts.csv", 2, "amount", "12O")(inputs_dir)
    rewrite("accounts.csv", lambda lines: ["sep=,", *lines])(inputs_dir)  # the first data row is now line 3
    assert_refused(inputs_dir, "accounts.csv:3: amount: '12O' is not a number")


# ---------------------------------------------------------------------------------------------
# 2. Numbers that mean something else

NUMBERS_REFUSED = {
    "a decimal comma": ('"5479,93"', "'5479,93' is not a number: write pence after a '.'"),
    "a European thousands dot and decimal comma": ('"1.860,00"', "'1.860,00' is not a number: write pence after a '.'"),
    "commas in the wrong places": ('"1,2,3"', "'1,2,3' is not a number"),
    "a comma before pence": ('"12,34"', "'12,34' is not a number"),
    "a pound sign": ("£250", "'£250' is not a number"),
    "negative in brackets": ("(250.00)", "'(250.00)' is not a number"),
    "a percent sign": ("20%", "'20%' is not a number"),
    "spelled out infinity": ("Infinity", "'Infinity' is not a number"),
    "running costs of 1e308": ("1e308", "'1e308' is more than £100,000,000"),
}


@pytest.mark.parametrize("case", NUMBERS_REFUSED)
def test_a_number_that_could_mean_something_else_is_refused(case: str, inputs_dir: Path) -> None:
    text, reason = NUMBERS_REFUSED[case]
    cell("libraries.csv", 2, "original_running_costs", text)(inputs_dir)
    assert_refused(inputs_dir, f"libraries.csv:2: original_running_costs: {reason}")


@pytest.mark.parametrize("text, value", [('"8,578.00"', 8578.0), ('"8,578"', 8578.0), ("8578", 8578.0), ("8578.", 8578.0),
                                         ("8.578e3", 8578.0)])
def test_a_thousands_comma_in_the_right_place_is_read(text: str, value: float, inputs_dir: Path) -> None:
    cell("libraries.csv", 2, "original_running_costs", text)(inputs_dir)
    assert load_inputs(inputs_dir).libraries.loc[0, "original_running_costs"] == value
