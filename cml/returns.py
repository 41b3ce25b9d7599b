"""A library's annual return as an Excel workbook: read one, or write a blank one to fill in.

Treasurers keep their figures in Excel; a return carries the same rows as the CSVs for one
library. This module only moves cells to and from text tables: the checking is done by
``cml.inputs`` with the same rules as the CSVs, so a return gets the same error messages.
"""

from __future__ import annotations

from pathlib import Path
from zipfile import BadZipFile

import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

LIBRARY_SHEET = "Library"
SHEET_COLUMNS = {
    "Accounts": ("financial_year", "line", "amount"),
    "Reserves": ("financial_year", "unrestricted", "designated", "fixed_assets", "restricted"),
    "Projection": ("financial_year", "income", "expenditure", "closing_reserves"),
}


class ReturnUnreadable(Exception):
    """The file is not a workbook, is damaged, or lacks the sheets or headings a return must have.

    ``sheet``, ``row`` and ``column`` say where, when the fault is in one place."""

    def __init__(self, message: str, sheet: str | None = None, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.sheet, self.row, self.column = sheet, row, column


DAMAGED = ("the workbook is damaged or not a real .xlsx ({error}): open it in Excel, check the figures "
           "and save it again as an Excel Workbook (.xlsx)")


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_return(path: Path) -> tuple[str, dict[str, pd.DataFrame]]:
    """The library id (cell B1 of ``Library``) and each sheet as text, indexed by Excel row."""
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as err:
        raise ReturnUnreadable(f"not an Excel workbook (.xlsx): {err}") from err
    except Exception as err:  # a damaged file fails deep in zipfile, zlib or the XML parser, with any error
        raise ReturnUnreadable(DAMAGED.format(error=f"{type(err).__name__}: {err}")) from err
    try:
        missing = [s for s in (LIBRARY_SHEET, *SHEET_COLUMNS) if s not in book.sheetnames]
        if missing:
            raise ReturnUnreadable(
                f"workbook lacks sheet(s) {', '.join(missing)}; it has {', '.join(book.sheetnames)}. "
                "Start from `cml template`"
            )
        library_id = _cell_text(book[LIBRARY_SHEET]["B1"].value)
        sheets = {}
        for name in SHEET_COLUMNS:
            sheets[name] = _sheet_as_text(book[name], name)
        return library_id, sheets
    except ReturnUnreadable:
        raise
    except Exception as err:  # read-only sheets are parsed lazily, so damage inside a sheet shows up here
        raise ReturnUnreadable(DAMAGED.format(error=f"{type(err).__name__}: {err}")) from err
    finally:
        book.close()


def _sheet_as_text(sheet, name: str) -> pd.DataFrame:
    """A sheet's rows as text, indexed by their Excel row number; blank rows skipped, not renumbered."""
    rows = {number: [_cell_text(v) for v in values]
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1) if any(v is not None for v in values)}
    if not rows:
        return pd.DataFrame(columns=list(SHEET_COLUMNS[name]), dtype=str)
    header_row = min(rows)
    header = rows.pop(header_row)
    if header_row != 1 or not set(SHEET_COLUMNS[name]) & set(header):
        raise ReturnUnreadable(f"sheet {name} should start with a header row: {', '.join(SHEET_COLUMNS[name])}", name, header_row)
    repeated = [c for c in dict.fromkeys(header) if c and header.count(c) > 1]
    if repeated:
        raise ReturnUnreadable(f"column heading '{repeated[0]}' appears more than once in the header: keep one column "
                               "of each", name, 1, repeated[0])
    width = len(header)
    body = {number: (values + [""] * width)[:width] for number, values in rows.items()}
    return pd.DataFrame.from_dict(body, orient="index", columns=header, dtype=str)


def write_template(path: Path, library_id: str, lines: pd.DataFrame) -> None:
    """A blank return for one library, with the allowed lines listed on a ``Lines`` sheet."""
    book = Workbook()
    info = book.active
    info.title = LIBRARY_SHEET
    info.append(["library_id", library_id])
    guidance = ("One row per financial year (e.g. 2024/25) and line; amounts in pounds, never negative. "
                "The Lines sheet lists every line and whether it is income or expenditure.")
    info.append(["How to fill in", guidance])
    for name, columns in SHEET_COLUMNS.items():
        sheet = book.create_sheet(name)
        sheet.append(list(columns))
        sheet.freeze_panes = "A2"
    reference = book.create_sheet("Lines")
    reference.append(["line", "side", "label"])
    for row in lines[["line", "side", "label"]].itertuples(index=False):
        reference.append(list(row))
    book.save(path)
