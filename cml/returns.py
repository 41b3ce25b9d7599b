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

from cml.fy import STANDARD_YEAR_END

LIBRARY_SHEET = "Library"
SHEET_COLUMNS = {
    "Accounts": ("financial_year", "line", "amount", "fund"),
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


def instruction_lines(year_end: str, receipts_and_payments: bool) -> list[str]:
    """The Instructions sheet: how to fill in the return, for this library's year end and kind of accounts."""
    basis = ("receipts and payments (cash) accounts: funds are the cash held at the year end, and fixed assets are 0"
             if receipts_and_payments else "accruals accounts (a statement of financial activities and a balance sheet)")
    return [
        "How to fill in this annual return",
        "",
        (f"This return expects the accounts as made up to {year_end} each year, as {basis} (libraries.csv says so: "
         "year_end and accounts_basis; ask the council's support officer if either has changed). Write each year as "
         "the financial year it mostly falls in: the year to 30 September 2024 is 2024/25, the year to 30 April 2024 "
         "is 2023/24."),
        ("1. Accounts: one row per financial year and line. The years and lines are filled in; type each amount "
         "in pounds (never negative; 0 where a line had nothing). Pick a line from the drop-down list; the Lines "
         "sheet says which lines are income and which are expenditure. fund: leave blank for the unrestricted "
         "column; write restricted for a line in the restricted column (a line in both columns takes two rows, "
         "one for each). The council's grant counts as income for running the library in either column."),
        ("2. Reserves: at each year's end, unrestricted funds, designated funds, fixed assets and restricted funds, "
         "in pounds."),
        ("3. Projection (optional): the trustees' own projection of income, expenditure and closing reserves for "
         "future years (e.g. 2025/26)."),
        "4. Do not rename the sheets or the header rows. Financial years are written like 2024/25.",
        ("5. Save the workbook as .xlsx and put it in inputs/returns/; `cml validate` checks it with the same rules "
         "as the CSVs and names any cell that is wrong."),
    ]


TEMPLATE_ROWS = 500  # rows the drop-down lists and checks cover on each sheet


def write_template(path: Path, library_id: str, lines: pd.DataFrame, years: list[str] | None = None,
                   year_end: str = STANDARD_YEAR_END, receipts_and_payments: bool = False) -> None:
    """A blank return for one library: an Instructions sheet; Accounts with every line of each
    year in ``years`` filled in (amounts left blank) and drop-down lists for the year and the
    line; Reserves with the years filled in; the allowed lines listed on a ``Lines`` sheet."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    years = list(years or [])
    book = Workbook()
    info = book.active
    info.title = LIBRARY_SHEET
    info.append(["library_id", library_id])
    guidance = ("One row per financial year (e.g. 2024/25) and line; amounts in pounds, never negative. "
                "The Lines sheet lists every line and whether it is income or expenditure.")
    info.append(["How to fill in", guidance])
    info.column_dimensions["A"].width = 16
    info.column_dimensions["B"].width = 100
    for name, columns in SHEET_COLUMNS.items():
        sheet = book.create_sheet(name)
        sheet.append(list(columns))
        sheet.freeze_panes = "A2"
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for index in range(len(columns)):
            sheet.column_dimensions[chr(ord("A") + index)].width = 18
    accounts, reserves = book["Accounts"], book["Reserves"]
    accounts.column_dimensions["B"].width = 30
    for year in years:
        for line in lines["line"]:
            accounts.append([year, line, None])
        reserves.append([year])
    reference = book.create_sheet("Lines")
    reference.append(["line", "side", "label"])
    for row in lines[["line", "side", "label"]].itertuples(index=False):
        reference.append(list(row))
    reference.column_dimensions["A"].width = 30
    reference.column_dimensions["C"].width = 50
    rows = max(TEMPLATE_ROWS, accounts.max_row + 100)
    line_list = DataValidation(type="list", formula1=f"=Lines!$A$2:$A${len(lines) + 1}", allow_blank=True,
                               showErrorMessage=True, errorTitle="Not a line",
                               error="Pick a line from the list (the Lines sheet lists them all).")
    line_list.add(f"B2:B{rows}")
    accounts.add_data_validation(line_list)
    amounts = DataValidation(type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
                             showErrorMessage=True, errorTitle="Not an amount",
                             error="An amount in pounds, never negative (0 where a line had nothing).")
    amounts.add(f"C2:C{rows}")
    accounts.add_data_validation(amounts)
    funds = DataValidation(type="list", formula1='"unrestricted,restricted"', allow_blank=True, showErrorMessage=True,
                           errorTitle="Not a fund", error="unrestricted (or blank) or restricted: the column of the "
                           "accounts the line is in.")
    funds.add(f"D2:D{rows}")
    accounts.add_data_validation(funds)
    if years:
        year_list = DataValidation(type="list", formula1='"' + ",".join(years) + '"', allow_blank=True,
                                   showErrorMessage=True, errorStyle="warning", errorTitle="Another year?",
                                   error="The return asks for " + ", ".join(years) + ". Keep this year anyway?")
        year_list.add(f"A2:A{rows}")
        accounts.add_data_validation(year_list)
        reserve_years = DataValidation(type="list", formula1='"' + ",".join(years) + '"', allow_blank=True,
                                       showErrorMessage=True, errorStyle="warning", errorTitle="Another year?",
                                       error="The return asks for " + ", ".join(years) + ". Keep this year anyway?")
        reserve_years.add(f"A2:A{rows}")
        reserves.add_data_validation(reserve_years)
    instructions = book.create_sheet("Instructions", 0)
    for text in instruction_lines(year_end, receipts_and_payments):
        instructions.append([text])
    instructions["A1"].font = Font(bold=True, size=14)
    instructions.column_dimensions["A"].width = 110
    for row in instructions.iter_rows(min_row=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    book.active = 0
    book.save(path)
