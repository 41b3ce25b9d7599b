"""Load and validate everything under ``inputs/``: stage 1 of the pipeline.

Every file is read as text first and each column converted with a check, so that a user's
mistake comes back as ``file:row: column: reason`` (all of them, not just the first) instead of a
traceback. Nothing downstream re-checks what is checked here.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from cml.errors import InputError, Problem
from cml.fy import STANDARD_YEAR_END, fy_label, library_years, parse_fy, parse_year_end
from cml.returns import SHEET_COLUMNS, ReturnUnreadable, read_return
from cml.schedule import PAYMENT_TIMINGS, apportion_to_financial_years, grant_years

LEASE_TYPES = ("full_repairing", "internal_repairing", "other")
ACCRUALS, RECEIPTS_AND_PAYMENTS = "accruals", "receipts_and_payments"
ACCOUNTS_BASES = (ACCRUALS, RECEIPTS_AND_PAYMENTS)
UNRESTRICTED, RESTRICTED = "unrestricted", "restricted"
FUNDS = (UNRESTRICTED, RESTRICTED)
RECEIPTS_AND_PAYMENTS_LIMIT = 250_000  # Charities Act 2011 s133: gross income up to £250,000 may be reported on a cash basis

# Lines the model itself refers to by name; load_inputs checks that lines.csv defines each.
CONTINGENCY_GRANT = "contingency_grant"
OTHER_GRANTS = "other_grants"
BUSINESS_GRANT = "covid_business_grant"
BUILDING_REPAIRS = "building_repairs"
BUILDING_FAILURE = "building_failure"
LEASE_FEES = "lease_fees"
ONE_OFF_COSTS = "one_off_costs"
PLANNED_INCOME = "planned_income"
FUND_TOP_UP = "fund_top_up"
MODEL_LINES = {  # line: (side, what cml uses it for)
    CONTINGENCY_GRANT: ("income", "contingency fund payments"),
    OTHER_GRANTS: ("income", "the funders' lease-security rule"),
    BUSINESS_GRANT: ("income", "government business grants in scenarios"),
    BUILDING_REPAIRS: ("expenditure", "building fabric costs (support option 2)"),
    BUILDING_FAILURE: ("expenditure", "building failures in scenarios"),
    LEASE_FEES: ("expenditure", "lease extension fees"),
    ONE_OFF_COSTS: ("expenditure", "a trustee's one-off cost"),
    PLANNED_INCOME: ("income", "the extra income a year the trustees plan to raise (levers.extra_income)"),
    FUND_TOP_UP: ("income", "contingency fund top-ups to a reserves floor, where a scenario pays them"),
}
SIDES = ("income", "expenditure")
FORECAST_METHODS = ("schedule", "one_off", "trend", "fitted", "ratio", "interest")
YES_NO = ("yes", "no")
MAX_MONTHS = 120  # a reserves policy of more than ten years' spending is a typing slip, not a policy
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")  # invisible in a PDF, and can break the PDF writer
GRANT_TOLERANCE = 0.01  # the taper and programme grants must give what the accounts show, to 1%
MAX_LEASE_YEARS = 125  # the longest lease a council grants a community group; 999 would overflow the dates
MAX_LIBRARIES = 3_000  # the scale the pack is built and benchmarked for (benchmarks/); split a larger portfolio by area
MAX_LIBRARY_FUTURES = 10_000_000  # libraries x simulation.draws held at once: about 1 GiB a scenario (benchmarks/simulation.py)
MAX_FILE_BYTES = 100_000_000  # an input this size holds far more than 3,000 libraries' accounts (58 MB for 10,000)
MAX_MONEY = 100_000_000  # £100 million: far above any library's figures; 1e308 would overflow the sums to inf


@dataclass(frozen=True)
class Column:
    """How one column of an input file is read and checked.

    ``kind`` is one of ``text``, ``money`` (pounds, never negative), ``number``, ``count``
    (whole number >= 0), ``percent`` (0 to 100), ``months`` (0 to 120), ``date`` (ISO), ``fy``
    (``2018/19``), ``year_end`` (a day of the year, ``30 September``) or ``choice``. ``minimum``
    raises the floor of a numeric column where zero would mean nonsense (a lease of no years).
    An optional column with a ``default`` reads a blank cell, or the column left out, as it.
    """

    name: str
    kind: str = "text"
    choices: tuple[str, ...] = ()
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    default: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """An input table: its columns and the columns that make a row unique."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    optional: bool = False


LIBRARIES = TableSpec(
    "libraries.csv",
    (
        Column("library_id"),
        Column("name"),
        Column("transfer_date", "date"),
        Column("original_running_costs", "money"),
        Column("lease_type", "choice", LEASE_TYPES),
        Column("lease_start", "date"),
        Column("lease_years", "count", minimum=1, maximum=MAX_LEASE_YEARS),
        Column("reserves_target_months", "months"),
        Column("illustrative", "choice", YES_NO),
        Column("year_end", "year_end", required=False, default=STANDARD_YEAR_END),
        Column("accounts_basis", "choice", ACCOUNTS_BASES, required=False, default=ACCRUALS),
    ),
    key=("library_id",),
)
ACCOUNTS = TableSpec(
    "accounts.csv",
    (Column("library_id"), Column("financial_year", "fy"), Column("line"), Column("amount", "money"),
     Column("fund", "choice", FUNDS, required=False, default=UNRESTRICTED)),
    key=("library_id", "financial_year", "line", "fund"),
)
RESERVES = TableSpec(
    "reserves.csv",
    (
        Column("library_id"),
        Column("financial_year", "fy"),
        Column("unrestricted", "number"),
        Column("designated", "money"),
        Column("fixed_assets", "money"),
        Column("restricted", "money"),
    ),
    key=("library_id", "financial_year"),
)
LINES = TableSpec(
    "lines.csv",
    (
        Column("line"),
        Column("side", "choice", SIDES),
        Column("group"),
        Column("running_cost", "choice", YES_NO),
        Column("forecast", "choice", FORECAST_METHODS),
        Column("label"),
        Column("source"),
        Column("ratio_of", required=False),
        Column("base_years", "count", required=False, minimum=1),
    ),
    key=("line",),
)
TAPER = TableSpec(
    "taper.csv",
    (Column("grant_year", "count"), Column("percent_of_running_costs", "percent"), Column("source")),
    key=("grant_year",),
)
ONE_OFF_GRANTS = TableSpec(
    "one_off_grants.csv",
    (
        Column("financial_year", "fy"),
        Column("line"),
        Column("percent_of_running_costs", "percent"),
        Column("source"),
    ),
    key=("financial_year", "line"),
)
TRUSTEE_PROJECTIONS = TableSpec(
    "trustee_projections.csv",
    (
        Column("library_id"),
        Column("financial_year", "fy"),
        Column("income", "money"),
        Column("expenditure", "money"),
        Column("closing_reserves", "number"),
    ),
    key=("library_id", "financial_year"),
    optional=True,
)
LEASE_EXTENSIONS = TableSpec(
    "lease_extensions.csv",
    (
        Column("library_id"),
        Column("financial_year", "fy"),
        Column("years_added", "count", minimum=1),
        Column("source"),
    ),
    key=("library_id", "financial_year"),
    optional=True,
)
RISK_BASES = ("income_group", "line", "spending", "fixed", "lease_fees")
RESERVES_RISKS = TableSpec(
    "reserves_risks.csv",
    (
        Column("risk"),
        Column("lease_type", "choice", (*LEASE_TYPES, "all")),
        Column("basis", "choice", RISK_BASES),
        Column("of", required=False),
        Column("probability_percent", "percent"),
        Column("impact", "number", minimum=0),
        Column("label"),
        Column("source"),
    ),
    key=("risk", "lease_type"),
    optional=True,
)
TABLES = (LIBRARIES, ACCOUNTS, RESERVES, LINES, TAPER, ONE_OFF_GRANTS, TRUSTEE_PROJECTIONS, LEASE_EXTENSIONS,
          RESERVES_RISKS)


@dataclass(frozen=True)
class Assumptions:
    """The model's settings from ``assumptions.toml`` (each value's source is noted there)."""

    horizon: int
    actuals_to: int | None
    base_years: int
    abnormal_years: tuple[int, ...]
    cost_step_years: tuple[int, ...]
    annual_gap_years: int
    cost_growth: float
    cost_growth_by_year: tuple[tuple[int, float], ...]  # (start year, rate) where the rate is dated
    income_growth: float
    growth_prior_sd: float
    interest_rate: float
    grant_payment: str
    red_below_months: float
    amber_below_months: float
    not_green_within_years: int
    interim_provision_per_year: float
    interim_provision_years: int
    real_terms_inflation: float
    stale_after_months: int
    tolerance_pounds: float
    simulation_draws: int
    simulation_seed: int
    simulation_chunk_cells: int
    simulation_common_share: float
    simulation_building_failure_probability: float
    simulation_building_failure_cost_median: float
    simulation_building_failure_cost_p90: float
    simulation_spread_scale: float
    targets_confidence: float
    targets_draws: int
    targets_rebuild_within_years: int
    far_more_than: float
    shortfall_years: int
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    def cost_inflation(self, year: int) -> float:
        """Cost inflation into financial year ``year`` (from the year before): its rate in
        ``growth.costs_by_year`` if dated there, else ``growth.costs``."""
        return dict(self.cost_growth_by_year).get(int(year), self.cost_growth)

    def log_cost_change(self, from_years, to_years) -> np.ndarray:
        """The log of cost prices in ``to_years`` over those in ``from_years``, element by element
        (either way round), compounding each year's :meth:`cost_inflation`.

        >>> a = Assumptions.__new__(Assumptions)
        >>> object.__setattr__(a, "cost_growth", 0.02)
        >>> object.__setattr__(a, "cost_growth_by_year", ((2024, 0.10),))
        >>> np.exp(a.log_cost_change([2023, 2025], [2025, 2023])).round(4).tolist()
        [1.122, 0.8913]
        """
        start, end = np.asarray(from_years, dtype=int), np.asarray(to_years, dtype=int)
        if start.size == 0:
            return np.zeros(np.broadcast(start, end).shape)
        low = int(min(start.min(), end.min()))
        span = np.arange(low, int(max(start.max(), end.max())) + 1)
        index = np.concatenate([[0.0], np.cumsum(np.log1p([self.cost_inflation(y) for y in span[1:]]))])
        return index[end - low] - index[start - low]


@dataclass(frozen=True)
class Inputs:
    """Validated inputs, with money as float pounds and financial years as start years."""

    libraries: pd.DataFrame
    accounts: pd.DataFrame
    reserves: pd.DataFrame
    lines: pd.DataFrame
    taper: pd.DataFrame
    one_off_grants: pd.DataFrame
    trustee_projections: pd.DataFrame
    lease_extensions: pd.DataFrame
    assumptions: Assumptions
    checksums: dict[str, str]
    warnings: tuple[str, ...] = ()
    reserves_risks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[c.name for c in RESERVES_RISKS.columns]))  # what was read leniently (e.g. Excel's "sep=," line), for the CLI to show

    @property
    def illustrative(self) -> bool:
        """True when any library's data is the shipped illustrative sample."""
        return bool((self.libraries["illustrative"] == "yes").any())

    @property
    def inputs_sha256(self) -> str:
        """One checksum over every input file, for the footer of every page."""
        digest = hashlib.sha256()
        for name in sorted(self.checksums):
            digest.update(f"{name}:{self.checksums[name]}\n".encode())
        return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading a table as text


def read_text_table(path: Path, label: str, problems: list[Problem], warnings: list[str] | None = None) -> pd.DataFrame | None:
    """Read a CSV as strings, reporting a missing, empty, non-UTF-8 or misshapen file as a problem.

    Shapes spreadsheets export are handled explicitly, never guessed at: Excel's ``sep=,`` first
    line and a trailing comma on every row are accepted with a warning (added to ``warnings``);
    a file separated by ``;`` (a European locale, with decimal commas) and rows with more values
    than the header (usually an unquoted thousands comma) are refused, so that no value is ever
    read into the wrong column.
    """
    warnings = [] if warnings is None else warnings
    if not path.exists():
        problems.append(Problem(label, None, None, "file is missing"))
        return None
    if path.stat().st_size > MAX_FILE_BYTES:
        problems.append(Problem(label, None, None, f"file is {path.stat().st_size / 1e6:,.1f} MB, more than the "
                                f"{MAX_FILE_BYTES / 1e6:,.1f} MB cml reads (the accounts of {MAX_LIBRARIES:,} libraries "
                                "take about 17 MB): split the portfolio into areas, each in its own inputs folder"))
        return None
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        problems.append(Problem(label, line, None, "file is not UTF-8 text; save it as CSV UTF-8"))
        return None
    if not text.strip():
        problems.append(Problem(label, None, None, "file is empty"))
        return None
    records = _csv_records(text, label, problems, warnings)
    if records is None:
        return None
    (header_row, header), *body = records
    header = [cell.strip() for cell in header]
    width = len(header)
    if body and all(len(cells) == width + 1 and cells[-1].strip() == "" for _, cells in body):
        body = [(row, cells[:-1]) for row, cells in body]
        warnings.append(f"{label}: every row ends with an extra comma (as some spreadsheets export); the empty last value was ignored")
    while header and header[-1] == "" and all(len(cells) < len(header) or cells[len(header) - 1].strip() == ""
                                              for _, cells in body):
        header.pop()
        body = [(row, cells[:len(header)]) for row, cells in body]
        warnings.append(f"{label}: the header ends with an empty column; it was ignored")
    width = len(header)
    long_rows = [(row, len(cells)) for row, cells in body if len(cells) > width]
    for row, count in long_rows:
        problems.append(Problem(label, row, None, f"{count} values where the header has {width}: a number written with a "
                                "thousands comma (1,228.93) must be in quotes or written without it (1228.93)"))
    counts = Counter(header)
    for name in dict.fromkeys(c for c in header if counts[c] > 1):
        spellings = {c for c in records[0][1] if c.strip() == name}
        problems.append(Problem(label, header_row, name or "-", "column appears more than once in the header"
                                + (" (once spaces are trimmed)" if len(spellings) > 1 else "")))
    if long_rows or any(counts[c] > 1 for c in header):
        return None
    frame = pd.DataFrame([(cells + [""] * width)[:width] for _, cells in body], columns=header, dtype=str,
                         index=pd.Index([row for row, _ in body], dtype=int))
    frame = frame.apply(lambda col: col.str.strip()) if len(frame) else frame
    frame = frame[(frame != "").any(axis=1)] if width else frame.iloc[:0]
    frame.attrs["header_row"] = header_row
    if frame.empty:
        problems.append(Problem(label, None, None, HEADER_ONLY))
        return None
    return frame


def _csv_records(text: str, label: str, problems: list[Problem], warnings: list[str]) -> list[tuple[int, list[str]]] | None:
    """Every non-blank record as (the line it starts on, its values); None after reporting a file
    cml must not guess at. The first record is the header."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    offset = 0
    declared = re.fullmatch(r'"?sep=(.)"?,*\s*', lines[first].strip().lower()) if lines else None
    if declared:
        if declared.group(1) != ",":
            problems.append(Problem(label, first + 1, None, f"the file says its values are separated by "
                                    f"'{declared.group(1)}': {SEMICOLON_ADVICE}"))
            return None
        warnings.append(f"{label}: the first line 'sep=,' (added by Excel) was skipped")
        offset = first + 1
    body = "".join(lines[offset:])
    reader = csv.reader(StringIO(body, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for cells in reader:
            start, previous = offset + previous + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                records.append((start, cells))
    except csv.Error as err:
        problems.append(Problem(label, offset + reader.line_num, None, f"not a readable CSV file: {err} "
                                "(check the quotes on this line)"))
        return None
    if not records:
        problems.append(Problem(label, None, None, "file is empty"))
        return None
    header_row, header = records[0]
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if len(header) == 1 and separator in header[0]:
            problems.append(Problem(label, header_row, None, f"values are separated by {name}, not ',': {SEMICOLON_ADVICE}"))
            return None
    return records


HEADER_ONLY = "file has a header but no rows"
SEMICOLON_ADVICE = ("save it as \"CSV UTF-8 (comma delimited)\" with '.' for pence (a spreadsheet set to a European "
                    "language writes ';' and decimal commas, which cml does not guess at)")


WHERE_FILE, WHERE_ROW = "_file", "_row"  # where each row came from, for messages after tables are merged


def match_headings(frame: pd.DataFrame, spec: TableSpec, label: str, warnings: list[str]) -> pd.DataFrame:
    """Headings as a spreadsheet may spell them (``Year_End``, ``year end``, ``Fund``) read as the
    column they name, and any other heading named as not read: an optional column under a heading
    cml does not know would otherwise be left out without a word (a restricted marking lost, a
    year end read as 31 March). Both are warnings, naming the heading."""
    names = [c.name for c in spec.columns]
    renames, unknown = {}, []
    for heading in frame.columns:
        if heading in names:
            continue
        plain = re.sub(r"[\s-]+", "_", heading.strip().lower())
        if plain in names and plain not in frame.columns and plain not in renames.values():
            renames[heading] = plain
        elif heading:
            unknown.append(heading)
    warnings += [f"{label}: the column headed '{h}' was read as {n}" for h, n in renames.items()]
    if unknown:
        warnings.append(f"{label}: column{'s' if len(unknown) > 1 else ''} {', '.join(repr(h) for h in unknown)} "
                        f"{'are' if len(unknown) > 1 else 'is'} not read (cml reads {', '.join(names)})")
    return frame.rename(columns=renames) if renames else frame


def check_table(frame: pd.DataFrame, spec: TableSpec, label: str, problems: list[Problem],
                warnings: list[str] | None = None) -> pd.DataFrame | None:
    """Convert each column to its kind, collecting a problem for every bad cell and duplicate.

    ``frame`` is all strings, indexed by the row number the user sees. Returns the converted
    frame, or None when required columns are missing (nothing further can be checked).
    """
    frame = match_headings(frame, spec, label, [] if warnings is None else warnings)
    missing = [c.name for c in spec.columns if c.required and c.name not in frame.columns]
    for name in missing:
        problems.append(Problem(label, frame.attrs.get("header_row", 1), name, "required column is missing"))
    if missing:
        return None
    out = pd.DataFrame(index=frame.index)
    for column in spec.columns:
        if not column.required:  # an optional column may be left out or left blank
            raw = frame[column.name] if column.name in frame.columns else pd.Series("", index=frame.index)
            if column.default is not None:
                out[column.name] = _convert(raw.where(raw != "", column.default), column, label, problems)
                continue
            given = raw != ""
            converted = _convert(raw[given], column, label, problems) if given.any() else raw[given]
            out[column.name] = converted.reindex(raw.index) if column.kind != "text" else raw
            continue
        out[column.name] = _convert(frame[column.name], column, label, problems)
    _check_duplicates(frame, spec, label, problems)
    out[WHERE_FILE], out[WHERE_ROW] = label, frame.index
    return out


def _report(bad: pd.Series, raw: pd.Series, label: str, column: str, reason: str, problems: list[Problem]) -> None:
    flagged = bad.fillna(False).astype(bool)
    for row, value in zip(flagged.index[flagged.to_numpy()], raw[flagged].tolist(), strict=True):  # no per-row lookups: files can be huge
        problems.append(Problem(label, int(row), column, reason.format(value=value)))


def _convert(raw: pd.Series, column: Column, label: str, problems: list[Problem]) -> pd.Series:
    """One column from text to its kind; bad cells are reported and become missing."""
    blank = raw == ""
    _report(blank, raw, label, column.name, "value is missing", problems)
    present = ~blank
    if column.kind == "text":
        return raw
    if column.kind == "choice":
        bad = present & ~raw.isin(column.choices)
        _report(bad, raw, label, column.name, "'{value}' is not one of " + ", ".join(column.choices), problems)
        return raw.where(~bad)
    if column.kind in ("money", "number", "count", "percent", "months"):
        number, _not_number = _numbers(raw, present, label, column.name, problems)
        if column.kind in ("money", "number"):
            dotted = raw.str.fullmatch(DOTTED_THOUSANDS).fillna(False).astype(bool) & number.notna()
            _report(dotted, raw, label, column.name, "'{value}' could be thousands with a '.' between them (as some "
                    "European spreadsheets write) or pounds with three decimal places: write 1860 or 1.86", problems)
            number = number.where(~dotted)
            _report(number.abs() > MAX_MONEY, raw, label, column.name, f"'{{value}}' is more than £{MAX_MONEY:,.0f}: money "
                    "is in pounds, and a figure this size is a typing slip", problems)
            number = number.where(number.abs() <= MAX_MONEY)
        if column.kind in ("money", "count", "percent", "months"):
            _report(number < 0, raw, label, column.name, "'{value}' must not be negative", problems)
        if column.minimum is not None:
            reported = (number < 0) if column.kind in ("money", "count", "percent", "months") else False  # said already
            _report((number < column.minimum) & ~reported, raw, label, column.name,
                    f"'{{value}}' must be at least {column.minimum:g}", problems)
        if column.maximum is not None:
            _report(number > column.maximum, raw, label, column.name, f"'{{value}}' is more than {column.maximum:g}", problems)
        if column.kind == "percent":
            _report(number > 100, raw, label, column.name, "'{value}' is more than 100 per cent", problems)
        if column.kind == "months":
            _report(number > MAX_MONTHS, raw, label, column.name, f"'{{value}}' is more than {MAX_MONTHS} months", problems)
        if column.kind == "count":
            _report(present & number.notna() & (number % 1 != 0), raw, label, column.name,
                    "'{value}' must be a whole number", problems)
        return number.astype(float)
    if column.kind == "date":
        dates = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        _report(present & dates.isna(), raw, label, column.name,
                "'{value}' is not a valid date written like 2015-10-01", problems)
        return dates
    if column.kind == "year_end":
        ends = raw.map(_year_end_or_none)
        for row, value in raw[present & ends.isna()].items():
            try:
                parse_year_end(value)
            except ValueError as err:
                problems.append(Problem(label, int(row), column.name, f"{err}: write the day the accounts are made up "
                                        "to, like 30 September"))
        return ends
    if column.kind == "fy":
        years = raw.map(_fy_or_none)
        _report(present & years.isna(), raw, label, column.name,
                "'{value}' is not a financial year written like 2018/19", problems)
        return years.astype("Int64")
    raise ValueError(f"unknown column kind {column.kind!r}")


THOUSANDS = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"  # 1,234.56 or 12,345: the only place a comma may stand
DOTTED_THOUSANDS = r"[+-]?\d{1,3}(?:\.\d{3})+"  # 1.860 or 1.234.567: a European thousands point, or three decimals?


def _numbers(raw: pd.Series, present: pd.Series, label: str, column: str,
             problems: list[Problem]) -> tuple[pd.Series, pd.Series]:
    """Text to float, refusing anything that could be read as a different number.

    A comma is accepted only between thousands (``1,234.56``); ``5479,93`` (a decimal comma),
    ``1.860,00`` and ``1,2,3`` are refused rather than read as 547,993 or 1.86.
    """
    comma = raw.str.contains(",", regex=False)
    bad_comma = comma & False
    cleaned = raw
    if comma.any():
        thousands = raw.str.fullmatch(THOUSANDS).fillna(False).astype(bool)
        bad_comma = present & comma & ~thousands
        _report(bad_comma, raw, label, column, "'{value}' is not a number: write pence after a '.' and commas only "
                "between thousands (5479.93 or 5,479.93), never a decimal comma", problems)
        cleaned = raw.where(~comma, raw.str.replace(",", "", regex=False)).where(~bad_comma, "")
    number = pd.to_numeric(cleaned, errors="coerce").astype(float)
    not_number = present & ~bad_comma & ~np.isfinite(number.fillna(np.nan))
    _report(not_number, raw, label, column, "'{value}' is not a number", problems)
    return number.where(~(not_number | bad_comma)), not_number | bad_comma


def _year_end_or_none(text: str) -> str | None:
    try:
        return parse_year_end(text)
    except ValueError:
        return None


def _fy_or_none(label: str) -> int | None:
    try:
        return parse_fy(label)
    except ValueError:
        return None


def _check_duplicates(frame: pd.DataFrame, spec: TableSpec, label: str, problems: list[Problem]) -> None:
    defaults = {c.name: c.default for c in spec.columns if c.name in spec.key and c.default is not None}
    keys = [k for k in spec.key if k not in defaults or k in frame.columns]  # a key column left out is its default throughout
    frame = frame.assign(**{k: frame[k].where(frame[k] != "", defaults[k]) for k in keys if k in defaults})
    repeated = frame.duplicated(keys, keep="first").to_numpy()
    if not repeated.any():
        return
    first_row = frame.index.to_series().groupby([frame[k] for k in keys]).transform("first")[repeated].tolist()
    values = [frame.loc[repeated, k].tolist() for k in keys]
    for i, row in enumerate(frame.index[repeated]):
        key = ", ".join(f"{k}={column[i]}" for k, column in zip(keys, values, strict=True))
        problems.append(Problem(label, int(row), [k for k in keys if k not in defaults][-1],
                                f"duplicate row ({key}) repeats row {first_row[i]}"))


# ---------------------------------------------------------------------------------------------
# Assumptions


def load_assumptions(path: Path, problems: list[Problem]) -> Assumptions | None:
    """Read ``assumptions.toml`` and check every setting's presence, type and range."""
    label = path.name
    if not path.exists():
        problems.append(Problem(label, None, None, "file is missing"))
        return None
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))  # Notepad's UTF-8 adds a BOM
    except UnicodeDecodeError:
        problems.append(Problem(label, None, None, "file is not UTF-8 text"))
        return None
    except tomllib.TOMLDecodeError as err:
        problems.append(Problem(label, getattr(err, "lineno", None), None, f"not valid TOML: {err}"))
        return None
    return assumptions_from_dict(raw, label, problems)


def _setting(raw: dict, path: str, kind: type, label: str, problems: list[Problem], minimum: float | None = None,
             maximum: float | None = None):
    section, key = path.split(".")
    value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
    if value is None:
        problems.append(Problem(label, None, path, "setting is missing"))
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = {str: 'text in quotes, like "2019/20"', int: "a whole number", float: "a number"}[kind]
        problems.append(Problem(label, None, path, f"{value!r} should be {wanted}"))
        return None
    if kind is float and not math.isfinite(value):
        problems.append(Problem(label, None, path, f"{value!r} should be a finite number"))
        return None
    if minimum is not None and value < minimum:
        problems.append(Problem(label, None, path, f"{value!r} must be at least {minimum}"))
        return None
    if maximum is not None and value > maximum:
        problems.append(Problem(label, None, path, f"{value!r} must be at most {maximum}"))
        return None
    return value


def _fy_setting(raw: dict, path: str, label: str, problems: list[Problem], allow_blank: bool) -> int | None:
    value = _setting(raw, path, str, label, problems)
    if value is None or (allow_blank and value == ""):
        return None
    try:
        return parse_fy(value)
    except ValueError as err:
        problems.append(Problem(label, None, path, str(err)))
        return None


KNOWN_SETTINGS = {
    "forecast": {"horizon", "actuals_to", "base_years", "abnormal_years", "cost_step_years", "annual_gap_years",
                 "growth_prior_sd"},
    "growth": {"costs", "costs_by_year", "income", "interest_on_balances"},
    "grant": {"payment"},
    "rag": {"red_below_months", "amber_below_months", "not_green_if_runs_out_within_years"},
    "council": {"interim_provision_per_year", "interim_provision_years"},
    "reporting": {"real_terms_inflation", "stale_after_months"},
    "checks": {"tolerance_pounds"},
    "targets": {"confidence", "draws", "rebuild_within_years"},
    "reserves_policy": {"far_more_than", "shortfall_years"},
    "simulation": {"draws", "seed", "chunk_cells", "common_share", "building_failure_probability",
                   "building_failure_cost_median", "building_failure_cost_p90", "spread_scale"},
}


def _fy_list_setting(raw: dict, path: str, label: str, problems: list[Problem]) -> tuple[int, ...] | None:
    """A list of financial-year labels (``["2020/21", "2021/22"]``), as start years."""
    section, key = path.split(".")
    value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
    if value is None:
        problems.append(Problem(label, None, path, "setting is missing"))
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(Problem(label, None, path, f'{value!r} should be a list of financial years like ["2020/21"]'))
        return None
    years = []
    for item in value:
        try:
            years.append(parse_fy(item))
        except ValueError as err:
            problems.append(Problem(label, None, path, str(err)))
            return None
    return tuple(sorted(set(years)))


def _dated_rates_setting(raw: dict, path: str, label: str, problems: list[Problem]) -> tuple[tuple[int, float], ...] | None:
    """A table of financial year to rate (``{"2024/25" = 0.035}``), as sorted (start year, rate)."""
    section, key = path.split(".")
    value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
    if value is None:
        problems.append(Problem(label, None, path, "setting is missing (an empty table {} dates nothing)"))
        return None
    if not isinstance(value, dict):
        problems.append(Problem(label, None, path, f'{value!r} should be a table like {{ "2024/25" = 0.035 }}'))
        return None
    rates = []
    for year, rate in value.items():
        try:
            start = parse_fy(year)
        except ValueError as err:
            problems.append(Problem(label, None, f"{path}.{year}", str(err)))
            continue
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not -0.5 <= rate <= 1.0:
            problems.append(Problem(label, None, f"{path}.{year}", f"{rate!r} should be a rate from -0.5 to 1.0"))
            continue
        rates.append((start, float(rate)))
    return tuple(sorted(rates))


def assumptions_from_dict(raw: dict, label: str, problems: list[Problem]) -> Assumptions | None:
    """Build :class:`Assumptions` from parsed TOML, reporting unknown or bad settings."""
    count = len(problems)
    for section, value in raw.items():
        if section not in KNOWN_SETTINGS or not isinstance(value, dict):
            problems.append(Problem(label, None, section, "unknown section"))
            continue
        for key in value:
            if key not in KNOWN_SETTINGS[section]:
                problems.append(Problem(label, None, f"{section}.{key}", "unknown setting"))
    values = {
        "horizon": _fy_setting(raw, "forecast.horizon", label, problems, allow_blank=False),
        "actuals_to": _fy_setting(raw, "forecast.actuals_to", label, problems, allow_blank=True),
        "base_years": _setting(raw, "forecast.base_years", int, label, problems, minimum=1, maximum=10),
        "abnormal_years": _fy_list_setting(raw, "forecast.abnormal_years", label, problems),
        "cost_step_years": _fy_list_setting(raw, "forecast.cost_step_years", label, problems),
        "annual_gap_years": _setting(raw, "forecast.annual_gap_years", int, label, problems, minimum=1, maximum=10),
        "cost_growth": _setting(raw, "growth.costs", float, label, problems, minimum=-0.5, maximum=1.0),
        "cost_growth_by_year": _dated_rates_setting(raw, "growth.costs_by_year", label, problems),
        "income_growth": _setting(raw, "growth.income", float, label, problems, minimum=-0.5, maximum=1.0),
        "growth_prior_sd": _setting(raw, "forecast.growth_prior_sd", float, label, problems, minimum=0, maximum=0.5),
        "interest_rate": _setting(raw, "growth.interest_on_balances", float, label, problems, minimum=0, maximum=0.2),
        "grant_payment": _setting(raw, "grant.payment", str, label, problems),
        "red_below_months": _setting(raw, "rag.red_below_months", float, label, problems, minimum=0),
        "amber_below_months": _setting(raw, "rag.amber_below_months", float, label, problems, minimum=0),
        "not_green_within_years": _setting(raw, "rag.not_green_if_runs_out_within_years", int, label, problems,
                                           minimum=0, maximum=30),
        "interim_provision_per_year": _setting(raw, "council.interim_provision_per_year", float, label, problems,
                                               minimum=0, maximum=10_000_000),
        "interim_provision_years": _setting(raw, "council.interim_provision_years", int, label, problems,
                                            minimum=0, maximum=30),
        "real_terms_inflation": _setting(raw, "reporting.real_terms_inflation", float, label, problems,
                                         minimum=-0.5, maximum=1.0),
        "stale_after_months": _setting(raw, "reporting.stale_after_months", int, label, problems, minimum=1, maximum=120),
        "tolerance_pounds": _setting(raw, "checks.tolerance_pounds", float, label, problems, minimum=0),
        "simulation_draws": _setting(raw, "simulation.draws", int, label, problems, minimum=1, maximum=1_000_000),
        "simulation_seed": _setting(raw, "simulation.seed", int, label, problems, minimum=0),
        "simulation_chunk_cells": _setting(raw, "simulation.chunk_cells", int, label, problems, minimum=1,
                                           maximum=100_000_000),
        "simulation_common_share": _setting(raw, "simulation.common_share", float, label, problems, minimum=0,
                                            maximum=1),
        "simulation_building_failure_probability": _setting(raw, "simulation.building_failure_probability", float,
                                                            label, problems, minimum=0, maximum=1),
        "simulation_building_failure_cost_median": _setting(raw, "simulation.building_failure_cost_median", float,
                                                            label, problems, minimum=0, maximum=MAX_MONEY),
        "simulation_building_failure_cost_p90": _setting(raw, "simulation.building_failure_cost_p90", float,
                                                         label, problems, minimum=0, maximum=MAX_MONEY),
        "simulation_spread_scale": _setting(raw, "simulation.spread_scale", float, label, problems, minimum=0,
                                            maximum=10),
        "targets_confidence": _setting(raw, "targets.confidence", float, label, problems, minimum=0.5, maximum=0.99),
        "targets_draws": _setting(raw, "targets.draws", int, label, problems, minimum=100, maximum=100_000),
        "far_more_than": _setting(raw, "reserves_policy.far_more_than", float, label, problems, minimum=1, maximum=20),
        "shortfall_years": _setting(raw, "reserves_policy.shortfall_years", int, label, problems, minimum=1, maximum=15),
        "targets_rebuild_within_years": _setting(raw, "targets.rebuild_within_years", int, label, problems,
                                                 minimum=1, maximum=30),
    }
    median, p90 = values["simulation_building_failure_cost_median"], values["simulation_building_failure_cost_p90"]
    if median is not None and p90 is not None and p90 < median:
        problems.append(Problem(label, None, "simulation.building_failure_cost_p90",
                                "must not be below simulation.building_failure_cost_median"))
    if values["grant_payment"] is not None and values["grant_payment"] not in PAYMENT_TIMINGS:
        problems.append(Problem(label, None, "grant.payment",
                                f"{values['grant_payment']!r} is not one of {', '.join(PAYMENT_TIMINGS)}"))
    red, amber = values["red_below_months"], values["amber_below_months"]
    if red is not None and amber is not None and amber < red:
        problems.append(Problem(label, None, "rag.amber_below_months", "must not be below rag.red_below_months"))
    if len(problems) > count:
        return None
    return Assumptions(**values, raw=raw)


# ---------------------------------------------------------------------------------------------
# Cross-file checks: every row reported where it came from (a CSV line or a return's Excel row)

SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
MAX_NAME_CHARACTERS = 80  # longer names run off a briefing's title and page footer
MAX_FORECAST_YEARS = 30  # beyond this a trend forecast means nothing, and costs grown for centuries overflow


def _flag(frame: pd.DataFrame, bad: pd.Series, column: str, reason: str, problems: list[Problem]) -> None:
    """A problem for every flagged row; ``reason`` may use ``{value}`` and any column, e.g. ``{library_id}``."""
    for _, row in frame[bad].iterrows():
        values = {k: (v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        values["value"] = values[column]
        values["value_length"] = len(str(values[column]))
        if "financial_year" in values and pd.notna(values["financial_year"]):
            values["fy"] = fy_label(int(values["financial_year"]))
        problems.append(Problem(row[WHERE_FILE], int(row[WHERE_ROW]), column, reason.format(**values)))


def check_references(tables: dict[str, pd.DataFrame], assumptions: Assumptions, problems: list[Problem]) -> None:
    """Checks that need two files: ids and lines that exist, dates inside the horizon."""
    libraries, lines = tables["libraries.csv"], tables["lines.csv"]
    _flag(libraries, ~libraries["library_id"].str.fullmatch(SLUG), "library_id",
          "'{value}' should be lower-case letters, digits and hyphens (e.g. barrow-upon-soar): it names files", problems)
    risks = [(tables["reserves_risks.csv"], "label")] if "reserves_risks.csv" in tables else []
    for frame, column in ((libraries, "name"), (lines, "label"), *risks):
        _flag(frame, frame[column].str.contains(CONTROL_CHARACTERS), column,
              "{value!r} contains a control character (a tab, new line, escape or an invisible direction mark): names "
              "must be plain text", problems)
    _flag(libraries, libraries["name"].str.len() > MAX_NAME_CHARACTERS, "name",
          f"is {{value_length}} characters long: a library's name must fit a briefing's title "
          f"({MAX_NAME_CHARACTERS} at most)", problems)
    _flag(libraries, libraries["library_id"].str.len() > MAX_NAME_CHARACTERS, "library_id",
          f"is longer than {MAX_NAME_CHARACTERS} characters: it names the briefing's file", problems)
    known = set(libraries["library_id"])
    for name in ("accounts.csv", "reserves.csv", "trustee_projections.csv", "lease_extensions.csv"):
        if name in tables:
            frame = tables[name]
            _flag(frame, ~frame["library_id"].isin(known), "library_id", "'{value}' is not a known library_id (not in libraries.csv)", problems)
    for name in ("accounts.csv", "one_off_grants.csv"):
        frame = tables[name]
        _flag(frame, ~frame["line"].isin(set(lines["line"])), "line", "'{value}' is not a known line (not in lines.csv)", problems)
    if "reserves_risks.csv" in tables:
        risks = tables["reserves_risks.csv"]
        _flag(risks, (risks["basis"] == "income_group") & ~risks["of"].isin(set(lines.loc[lines["side"] == "income", "group"])),
              "of", "'{value}' is not the group of any income line in lines.csv (basis income_group)", problems)
        _flag(risks, (risks["basis"] == "line") & ~risks["of"].isin(set(lines["line"])), "of",
              "'{value}' is not a line in lines.csv (basis line)", problems)
        _flag(risks, risks["basis"].isin(["spending", "fixed", "lease_fees"]) & (risks["of"] != ""), "of",
              "leave 'of' blank for basis '{basis}'", problems)
        _flag(risks, (risks["basis"] == "spending") & (risks["impact"] > MAX_MONTHS), "impact",
              f"{{value}} months of spending is more than {MAX_MONTHS}: impact is in months for basis 'spending'", problems)
        _flag(risks, risks["basis"].isin(["income_group", "line"]) & (risks["impact"] > 100), "impact",
              "{value} is more than 100: impact is the percent of that income that could be lost", problems)
    trend_lines = set(lines.loc[lines["forecast"].isin(["trend", "fitted"]), "line"])
    ratio = lines["forecast"] == "ratio"
    _flag(lines, ratio & ~lines["ratio_of"].isin(trend_lines), "ratio_of",
          "'{line}' is forecast as a ratio, so ratio_of must name a trend or fitted line it moves with (e.g. cafe), "
          "not '{value}'", problems)
    _flag(lines, (lines["forecast"] == "fitted") & (lines["group"] != "self_generated"), "forecast",
          "'{line}' is in group '{group}': only self_generated lines can be 'fitted' (the pooled model is of "
          "self-generated income)", problems)
    _flag(lines, ~ratio & (lines["ratio_of"] != ""), "ratio_of", "'{line}' is not forecast as a ratio: leave ratio_of blank",
          problems)
    if (lines["forecast"] == "interest").sum() > 1:
        problems.append(Problem("lines.csv", None, "forecast", "at most one line may be forecast as 'interest' (bank interest)"))
    if "lease_extensions.csv" in tables:
        extensions = tables["lease_extensions.csv"]
        start = library_years(libraries, "lease_start")
        _flag(extensions, extensions["financial_year"] <= extensions["library_id"].map(start), "financial_year",
              "{fy} is not after {library_id}'s lease began: an extension adds years to a lease already running", problems)
    if (lines["forecast"] == "schedule").sum() != 1:
        problems.append(Problem("lines.csv", None, "forecast", "exactly one line must be forecast by 'schedule' (the taper grant)"))
    missing_lines = sorted(set(MODEL_LINES) - set(lines["line"]))
    problems += [Problem("lines.csv", None, "line", f"'{line}' is missing: cml needs it for {MODEL_LINES[line][1]}")
                 for line in missing_lines]
    expected_side = lines["line"].map({line: side for line, (side, _) in MODEL_LINES.items()})
    _flag(lines, expected_side.notna() & (lines["side"] != expected_side), "side",
          "'{line}' must be on the side cml treats it as (see MODEL_LINES in cml/inputs.py), not '{value}'", problems)
    one_offs = tables["one_off_grants.csv"]
    first_transfer = library_years(libraries, "transfer_date").min()
    _flag(one_offs, (one_offs["financial_year"] < first_transfer) | (one_offs["financial_year"] > assumptions.horizon),
          "financial_year", f"{{fy}} is outside the years modelled ({fy_label(int(first_transfer))} to "
          f"{fy_label(assumptions.horizon)}), so this grant would never be paid", problems)
    for column in ("transfer_date", "lease_start"):
        _flag(libraries, libraries[column] > pd.Timestamp(assumptions.horizon + 1, 3, 31), column,
              f"'{{value}}' is after the forecast horizon {fy_label(assumptions.horizon)}", problems)
    taper = tables["taper.csv"]
    if sorted(taper["grant_year"].dropna().astype(int)) != list(range(1, len(taper) + 1)):
        problems.append(Problem("taper.csv", None, "grant_year", "grant years must run 1, 2, 3, ... with no gaps"))


def check_coverage(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """Every year of accounts has closing reserves and the reverse, with no gaps, and nothing
    (accounts, reserves or trustees' projection) before the transfer: a year with half its figures
    would be projected from silently wrong numbers."""
    libraries = tables["libraries.csv"]
    first_year = library_years(libraries, "transfer_date")
    accounts, reserves = tables["accounts.csv"], tables["reserves.csv"]
    trustees = [tables["trustee_projections.csv"]] if "trustee_projections.csv" in tables else []
    for frame in (accounts, reserves, *trustees):
        early = frame["financial_year"] < frame["library_id"].map(first_year)
        _flag(frame, early, "financial_year", "{fy} is before {library_id} transferred", problems)
    keys = ["library_id", "financial_year"]
    reserve_years = pd.MultiIndex.from_frame(reserves[keys])
    account_years = pd.MultiIndex.from_frame(accounts[keys])
    no_reserves = ~account_years.isin(reserve_years) & ~accounts.duplicated(keys)
    _flag(accounts, pd.Series(no_reserves, index=accounts.index), "financial_year",
          "{library_id} has accounts for {fy} but no closing reserves for it in reserves.csv", problems)
    _flag(reserves, pd.Series(~reserve_years.isin(account_years), index=reserves.index), "financial_year",
          "{library_id} has closing reserves for {fy} but no accounts for that year", problems)
    ordered = reserves.sort_values(keys)
    previous = ordered.groupby("library_id")["financial_year"].shift()
    _flag(ordered, previous.notna() & (ordered["financial_year"] != previous + 1), "financial_year",
          "{fy} does not follow the library's previous year of reserves: the years between are missing", problems)
    for library_id in sorted(set(libraries["library_id"]) - set(reserves["library_id"])):
        _flag(libraries, libraries["library_id"] == library_id, "library_id",
              "'{value}' has no rows in reserves.csv: its reserves cannot be projected", problems)


def forecast_window_problems(reserve_years: pd.DataFrame, assumptions: Assumptions) -> list[tuple[str, str]]:
    """Why ``actuals_to`` or ``horizon`` leave a library nothing to start from or nothing to forecast,
    as (setting, reason) pairs; run for assumptions.toml and again for each scenario that overrides them.
    ``reserve_years`` has ``library_id`` and ``year``."""
    first = reserve_years.groupby("library_id")["year"].min()
    latest = reserve_years.groupby("library_id")["year"].max()
    reasons = []
    if assumptions.actuals_to is not None:
        late = first[first > assumptions.actuals_to]
        if len(late):
            reasons.append(("forecast.actuals_to", (f"{fy_label(assumptions.actuals_to)} is before the first year of reserves "
                            f"of {', '.join(late.index[:5])}{' ...' if len(late) > 5 else ''} (they have nothing to start from)")))
    last_actual = latest if assumptions.actuals_to is None else latest.clip(upper=assumptions.actuals_to)
    if assumptions.horizon > last_actual.max() + MAX_FORECAST_YEARS:
        reasons.append(("forecast.horizon", (f"{fy_label(assumptions.horizon)} is more than {MAX_FORECAST_YEARS} years after "
                        f"the last actual year {fy_label(int(last_actual.max()))}: too far to forecast from a trend")))
    if assumptions.horizon <= last_actual.max():
        reasons.append(("forecast.horizon", (f"{fy_label(assumptions.horizon)} is not after the last actual year "
                        f"{fy_label(int(last_actual.max()))}: there is nothing to forecast")))
    return reasons


def check_reserves_reconcile(accounts: pd.DataFrame, reserves: pd.DataFrame, lines: pd.DataFrame,
                             tolerance: float, problems: list[Problem]) -> None:
    """Closing total funds = previous closing + income - expenditure, for every actual year.

    A mismatch means a line is missing from the accounts or a figure is mistyped; projecting
    from figures that do not tie would put an unexplained gap in front of a committee.
    """
    sign = lines.set_index("line")["side"].map({"income": 1.0, "expenditure": -1.0})
    flows = accounts.assign(net=accounts["amount"] * accounts["line"].map(sign))
    net = flows.groupby(["library_id", "financial_year"])["net"].sum()
    funds = reserves.assign(total=reserves["unrestricted"] + reserves["restricted"]).sort_values(["library_id", "financial_year"])
    funds["previous"] = funds.groupby("library_id")["total"].shift()
    funds = funds.join(net, on=["library_id", "financial_year"])
    funds["gap"] = funds["total"] - (funds["previous"] + funds["net"])
    _flag(funds, funds["previous"].notna() & (funds["gap"].abs() > tolerance), "unrestricted",
          "closing funds {total:,.2f} do not equal the previous year's {previous:,.2f} plus income less "
          "expenditure in the accounts ({net:,.2f}): they differ by {gap:,.2f}", problems)


def check_accounts_start_at_transfer(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """Each library's actual years start in the year it transferred: the model projects every year
    from the transfer, and a year with no figures would make its reserves unknown (the run would
    stop on a failed check instead of saying which file is wrong)."""
    libraries, reserves = tables["libraries.csv"], tables["reserves.csv"]
    first_actual = reserves.groupby("library_id")["financial_year"].min()
    first = libraries.assign(transfer_year=library_years(libraries, "transfer_date").to_numpy(),
                             first_actual=libraries["library_id"].map(first_actual))
    first = first[first["first_actual"].notna()]
    late = first["first_actual"] > first["transfer_year"]
    first["gap"] = first["first_actual"] - first["transfer_year"]
    first["first_fy"] = first["first_actual"].map(lambda y: fy_label(int(y)))
    first["transfer_fy"] = first["transfer_year"].map(lambda y: fy_label(int(y)))
    first["missing_to"] = (first["first_actual"] - 1).map(lambda y: fy_label(int(y)))
    _flag(first, late & (first["gap"] > 2), "transfer_date",
          "'{value}' ({transfer_fy}) is {gap:.0f} years before {library_id}'s first accounts and reserves "
          "({first_fy}): check the date, or add the years {transfer_fy} to {missing_to}", problems)
    starts = reserves.sort_values(["library_id", "financial_year"]).drop_duplicates("library_id")
    starts = starts.merge(first[late & (first["gap"] <= 2)][["library_id", "transfer_date", "transfer_fy", "missing_to"]])
    _flag(starts, pd.Series(True, index=starts.index), "financial_year",
          "{library_id}'s actual years start in {fy}, but it transferred on {transfer_date} ({transfer_fy}): the "
          "accounts and closing reserves for {transfer_fy} to {missing_to} are missing", problems)


def check_accounts_basis(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """Receipts and payments accounts are cash accounts: their funds are the cash held, so nothing
    is tied up in fixed assets, and the Charities Act allows them only up to £250,000 of gross
    income. Either fact failing means ``accounts_basis`` or the figures are wrong."""
    libraries, reserves, accounts, lines = (tables[n] for n in ("libraries.csv", "reserves.csv", "accounts.csv", "lines.csv"))
    cash = set(libraries.loc[libraries["accounts_basis"] == RECEIPTS_AND_PAYMENTS, "library_id"])
    if not cash:
        return
    _flag(reserves, reserves["library_id"].isin(cash) & (reserves["fixed_assets"] > 0), "fixed_assets",
          "{library_id} keeps receipts and payments accounts (libraries.csv accounts_basis), whose funds are cash: "
          "'{value}' of fixed assets belongs in its statement of assets, not in its funds; write 0", problems)
    income = accounts[accounts["library_id"].isin(cash)
                      & accounts["line"].isin(set(lines.loc[lines["side"] == "income", "line"]))]
    gross = income.groupby(["library_id", "financial_year"], as_index=False)["amount"].sum()
    over = gross[gross["amount"] > RECEIPTS_AND_PAYMENTS_LIMIT]
    rows = libraries.set_index("library_id")
    for item in over.itertuples():
        problems.append(Problem("libraries.csv", int(rows.loc[item.library_id, WHERE_ROW]), "accounts_basis", (
            f"{item.library_id}'s gross income in {fy_label(int(item.financial_year))} is £{item.amount:,.2f}, over the "
            f"£{RECEIPTS_AND_PAYMENTS_LIMIT:,} up to which a charity may keep receipts and payments accounts: "
            f"its accounts must be on the {ACCRUALS} basis")))


def restricted_fund_warnings(accounts: pd.DataFrame, reserves: pd.DataFrame, lines: pd.DataFrame,
                             tolerance: float) -> list[str]:
    """Where accounts say which lines are restricted (``fund``), whether restricted funds move as
    they do. The model counts every line whichever column it is in (a council grant in the
    restricted column is still income for running the library), so a mismatch is a warning: a
    transfer between funds, which accounts.csv has no line for, explains it as well as a line in
    the wrong column."""
    split = accounts.loc[accounts["fund"] == RESTRICTED, ["library_id", "financial_year"]].drop_duplicates()
    if split.empty:
        return []
    sign = lines.set_index("line")["side"].map({"income": 1.0, "expenditure": -1.0})
    restricted = accounts[accounts["fund"] == RESTRICTED]
    net = (restricted["amount"] * restricted["line"].map(sign)).groupby(
        [restricted["library_id"], restricted["financial_year"]]).sum().rename("net")
    funds = reserves.sort_values(["library_id", "financial_year"])[["library_id", "financial_year", "restricted"]].copy()
    funds["change"] = funds["restricted"] - funds.groupby("library_id")["restricted"].shift()
    funds = split.merge(funds, on=["library_id", "financial_year"]).join(net, on=["library_id", "financial_year"])
    where = restricted.groupby(["library_id", "financial_year"])[WHERE_FILE].first().rename("where")
    funds = funds.join(where, on=["library_id", "financial_year"])
    off = funds[funds["change"].notna() & ((funds["change"] - funds["net"]).abs() > tolerance)]
    return [f"{r.where}: {r.library_id} {fy_label(int(r.financial_year))}: restricted funds changed by £{r.change:,.2f} "
            f"(reserves.csv) but the restricted lines of accounts.csv net to £{r.net:,.2f}: a transfer between funds, or a "
            "line in the wrong column? Every line is counted whichever column it is in" for r in off.itertuples()]


def _agrees(a: pd.Series, b: pd.Series, tolerance: float) -> pd.Series:
    return (a - b).abs() <= np.maximum(tolerance, GRANT_TOLERANCE * np.maximum(a.abs(), b.abs()))


def check_grants_against_accounts(tables: dict[str, pd.DataFrame], tolerance: float, problems: list[Problem]) -> None:
    """The taper and one-off grant percents must give what the accounts show was paid.

    A taper typed as fractions (0.2 for 20%) would cut every forecast grant a hundredfold; where
    actual years overlap the schedule, the accounts say what the council really paid, so a
    disagreement beyond ``GRANT_TOLERANCE`` is refused with both figures. A grant year that most
    libraries disagree on is blamed on its ``taper.csv`` row; a few libraries on their own rows.
    """
    libraries, accounts, reserves, lines = (tables[n] for n in ("libraries.csv", "accounts.csv", "reserves.csv", "lines.csv"))
    taper, one_offs = tables["taper.csv"], tables["one_off_grants.csv"]
    percents = taper["percent_of_running_costs"]
    if len(percents) and (percents <= 1).all() and (percents > 0).any():
        problems.append(Problem("taper.csv", None, "percent_of_running_costs",
                                f"every percent is 1 or less ({', '.join(f'{p:g}' for p in percents[:7])}): looks like "
                                "fractions; write 20 for 20%"))
        return
    actual = reserves[["library_id", "financial_year"]].rename(columns={"financial_year": "year"})
    schedule_line = lines.loc[lines["forecast"] == "schedule", "line"].iloc[0]
    facts = libraries[["library_id", "transfer_date", "original_running_costs", "year_end"]].assign(
        **{WHERE_ROW: libraries[WHERE_ROW]})
    years = grant_years(facts, taper.assign(grant_year=taper["grant_year"].astype(int)))
    in_advance = apportion_to_financial_years(years, "in_advance")
    by_days = apportion_to_financial_years(years, "by_days").groupby(["library_id", "year"])["amount"].sum()
    paid = accounts[accounts["line"] == schedule_line].rename(columns={"financial_year": "year"})
    paid_sum = paid.groupby(["library_id", "year"])["amount"].sum()
    compared = (actual.merge(in_advance, how="left", on=["library_id", "year"])
                .merge(by_days.rename("by_days").reset_index(), how="left", on=["library_id", "year"])
                .merge(paid_sum.rename("paid").reset_index(), how="left", on=["library_id", "year"]))
    compared["expected"] = compared["amount"].fillna(0.0)
    compared[["by_days", "paid"]] = compared[["by_days", "paid"]].fillna(0.0)
    compared["ok"] = (_agrees(compared["paid"], compared["expected"], tolerance)
                      | _agrees(compared["paid"], compared["by_days"], tolerance)).to_numpy()
    percent_of = taper.set_index(taper["grant_year"].astype(int))
    blamed_years = []
    for grant_year, rows in compared[compared["grant_year"].notna()].groupby("grant_year"):
        if len(rows) >= 3 and (~rows["ok"]).sum() > len(rows) / 2:
            blamed_years.append(grant_year)
            row = percent_of.loc[int(grant_year)]
            problems.append(Problem("taper.csv", int(row[WHERE_ROW]), "percent_of_running_costs", (
                f"{row['percent_of_running_costs']:g}% of running costs gives £{rows['expected'].sum():,.2f} for grant year "
                f"{int(grant_year)} of the {len(rows)} libraries with accounts for it, but their {schedule_line} lines in "
                f"accounts.csv show £{rows['paid'].sum():,.2f} ({(~rows['ok']).sum()} disagree by more than "
                f"{GRANT_TOLERANCE:.0%})")))
    alone = compared[~compared["ok"] & ~compared["grant_year"].isin(blamed_years)]
    where = paid.drop_duplicates(["library_id", "year"]).set_index(["library_id", "year"])[[WHERE_FILE, WHERE_ROW]]
    rows_of = libraries.set_index("library_id")[WHERE_ROW]
    for item in alone.itertuples():
        fy = fy_label(int(item.year))
        facts_row = libraries.loc[libraries["library_id"] == item.library_id].iloc[0]
        taper_says = (f"grant year {int(item.grant_year)} of the taper gives £{item.expected:,.2f}" if pd.notna(item.grant_year)
                      else f"the taper gives £0.00 that year ({len(taper)} grant years from the transfer on "
                      f"{facts_row['transfer_date']:%Y-%m-%d}, of original running costs £{facts_row['original_running_costs']:,.2f})")
        if (item.library_id, item.year) in where.index:
            source_file, source_row = where.loc[(item.library_id, item.year)]  # a CSV line or a return's Excel row
            problems.append(Problem(source_file, int(source_row), "amount", (
                f"{item.library_id}'s {schedule_line} of £{item.paid:,.2f} in {fy} does not agree with the taper: "
                f"{taper_says} (taper.csv percent x original_running_costs in libraries.csv)")))
        else:
            problems.append(Problem("libraries.csv", int(rows_of[item.library_id]), "original_running_costs", (
                f"{taper_says} for {item.library_id} in {fy}, but accounts.csv has no {schedule_line} line for that year")))
    _check_one_offs(one_offs, libraries, actual, accounts, tolerance, problems)


def _check_one_offs(one_offs: pd.DataFrame, libraries: pd.DataFrame, actual: pd.DataFrame, accounts: pd.DataFrame,
                    tolerance: float, problems: list[Problem]) -> None:
    """Each programme grant against the accounts of the libraries whose actual years include it.

    The same line may also carry other payments (the contingency fund's emergency grants), so a
    library's accounts may hold more than the programme grant; the row is refused when most
    libraries' accounts disagree with it, or a library's hold less than it gives."""
    costs = libraries.set_index("library_id")["original_running_costs"]
    for _, grant in one_offs.iterrows():
        year, line, percent = int(grant["financial_year"]), grant["line"], grant["percent_of_running_costs"]
        ids = actual.loc[actual["year"] == year, "library_id"]
        if ids.empty:
            continue
        in_year = accounts[(accounts["financial_year"] == year) & (accounts["line"] == line)]
        paid = in_year.groupby("library_id")["amount"].sum().reindex(ids, fill_value=0.0)
        expected = costs.reindex(ids) * percent / 100.0
        ok = _agrees(paid, expected, tolerance)
        fy = fy_label(year)
        if len(ids) >= 3 and (~ok).sum() > len(ids) / 2:
            problems.append(Problem(grant[WHERE_FILE], int(grant[WHERE_ROW]), "percent_of_running_costs", (
                f"{percent:g}% of running costs gives £{expected.sum():,.2f} in {fy} across the {len(ids)} libraries with "
                f"accounts for that year, but their {line} lines in accounts.csv show £{paid.sum():,.2f}"
                + (": looks like a fraction; write 20 for 20%" if percent <= 1 else ""))))
            continue
        short = ~ok & (paid < expected)
        where = in_year.drop_duplicates("library_id").set_index("library_id")[[WHERE_FILE, WHERE_ROW]]
        for library_id in paid.index[short.to_numpy()]:
            found = library_id in where.index
            source_file, source_row = where.loc[library_id] if found else (grant[WHERE_FILE], grant[WHERE_ROW])
            problems.append(Problem(source_file, int(source_row), "amount" if found else "percent_of_running_costs", (
                f"{library_id}'s {line} in {fy} is £{paid[library_id]:,.2f}"
                + ("" if found else f" (accounts.csv has no {line} line for it that year)")
                + f", less than the programme grant of £{expected[library_id]:,.2f} ({percent:g}% of running costs, "
                "one_off_grants.csv) every library received; a library whose year does not end on 31 March has it in "
                "the year of its accounts it was paid in")))


# ---------------------------------------------------------------------------------------------
# Annual returns (Excel): same checks as the CSVs, then they replace the CSV rows they cover

RETURN_TABLES = {"Accounts": ACCOUNTS, "Reserves": RESERVES, "Projection": TRUSTEE_PROJECTIONS}


def _return_spec(sheet: str) -> TableSpec:
    """The CSV spec of a return sheet, less ``library_id`` (the workbook names its library once)."""
    spec = RETURN_TABLES[sheet]
    columns = tuple(c for c in spec.columns if c.name != "library_id")
    assert tuple(c.name for c in columns) == SHEET_COLUMNS[sheet]
    return TableSpec(spec.name, columns, tuple(k for k in spec.key if k != "library_id"))


def return_files(folder: Path, problems: list[Problem]) -> list[Path]:
    """The workbooks in ``returns/``: ``.xlsx`` in any case; Excel's own lock files (``~$...``) and
    hidden files skipped; any other file reported, as it may be a return saved in the wrong format."""
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(("~$", "."))):
        if path.suffix.lower() == ".xlsx":
            files.append(path)
        else:
            problems.append(Problem(f"returns/{path.name}", None, None,
                                    "only Excel workbooks (.xlsx) are read here: save it as .xlsx or move it out"))
    return files


def apply_returns(folder: Path, tables: dict[str, pd.DataFrame], problems: list[Problem],
                  warnings: list[str]) -> dict[str, pd.DataFrame]:
    """Read every ``returns/*.xlsx`` and let its rows replace the CSV rows for the same library and years."""
    if not folder.is_dir():
        return tables
    known = set(tables["libraries.csv"]["library_id"])
    seen: dict[str, str] = {}
    for path in return_files(folder, problems):
        label = f"returns/{path.name}"
        try:
            library_id, sheets = read_return(path)
        except ReturnUnreadable as err:
            problems.append(Problem(label if err.sheet is None else f"{label}[{err.sheet}]", err.row, err.column, str(err)))
            continue
        if library_id not in known:
            problems.append(Problem(f"{label}[Library]", 1, "B1", f"'{library_id}' is not a library_id in libraries.csv"))
            continue
        if library_id in seen:
            problems.append(Problem(f"{label}[Library]", 1, "B1", f"'{library_id}' also has the return {seen[library_id]}: "
                                    "keep one return per library in returns/"))
            continue
        seen[library_id] = label
        for sheet, frame in sheets.items():
            if frame.empty:
                continue
            checked = check_table(frame, _return_spec(sheet), f"{label}[{sheet}]", problems, warnings)
            if checked is None:
                continue
            target = RETURN_TABLES[sheet].name
            current = tables.get(target, checked.iloc[:0].assign(library_id=""))
            replaced = (current["library_id"] == library_id) & current["financial_year"].isin(set(checked["financial_year"]))
            tables[target] = pd.concat([current[~replaced], checked.assign(library_id=library_id)], ignore_index=True)
    return tables


# ---------------------------------------------------------------------------------------------
# The public entry point


def too_many_libraries(libraries: pd.DataFrame, assumptions: Assumptions | None, problems: list[Problem]) -> bool:
    """More libraries than one run is built for, or than its futures fit in memory: refused at once
    (a 10,000-library portfolio ran for minutes and then crashed, holding 8 GB)."""
    count = len(libraries)
    if count > MAX_LIBRARIES:
        problems.append(Problem("libraries.csv", int(libraries[WHERE_ROW].iloc[MAX_LIBRARIES]), None, (
            f"{count:,} libraries: one run forecasts at most {MAX_LIBRARIES:,} (the pack would take hours and more memory "
            "than a desktop has); split the portfolio into areas, each in its own inputs folder")))
        return True
    if assumptions is not None and count * assumptions.simulation_draws > MAX_LIBRARY_FUTURES:
        fits = MAX_LIBRARY_FUTURES // count
        problems.append(Problem("assumptions.toml", None, "simulation.draws", (
            f"{assumptions.simulation_draws:,} futures for each of {count:,} libraries is more than cml holds at once "
            f"({MAX_LIBRARY_FUTURES:,} library-futures, about 1 GiB a scenario): set draws to {fits:,} or fewer")))
        return True
    return False


def file_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every input file, recorded in ``run.json`` and on every page."""
    checksums = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            with path.open("rb") as handle:  # streamed in chunks: a huge input must not be held in memory twice
                checksums[str(path.relative_to(directory))] = hashlib.file_digest(handle, "sha256").hexdigest()
    return checksums


def load_inputs(directory: Path) -> Inputs:
    """Read and check every input under ``directory``; raise :class:`InputError` listing all problems."""
    directory = Path(directory)
    problems: list[Problem] = []
    warnings: list[str] = []
    if not directory.is_dir():
        raise InputError([Problem(str(directory), None, None, "inputs folder does not exist")])
    assumptions = load_assumptions(directory / "assumptions.toml", problems)
    tables: dict[str, pd.DataFrame] = {}
    for spec in TABLES:
        path = directory / spec.name
        if spec.optional and not path.exists():
            continue
        raw = read_text_table(path, spec.name, problems, warnings)
        if spec.optional and problems and problems[-1] == Problem(spec.name, None, None, HEADER_ONLY):
            problems.pop()  # an optional file with its header and no rows says "none", like no file
            warnings.append(f"{spec.name}: has a header but no rows, so it is read as none")
            continue
        checked = None if raw is None else check_table(raw, spec, spec.name, problems, warnings)
        if checked is not None:
            tables[spec.name] = checked
        if spec is LIBRARIES and checked is not None and too_many_libraries(checked, assumptions, problems):
            raise InputError(problems)  # before reading accounts a run could not finish with
    if not problems:
        tables = apply_returns(directory / "returns", tables, problems, warnings)
    if not problems and assumptions is not None:
        check_references(tables, assumptions, problems)
    if not problems:
        check_coverage(tables, problems)
    if not problems:
        check_accounts_start_at_transfer(tables, problems)
        check_accounts_basis(tables, problems)
    if not problems:
        check_grants_against_accounts(tables, assumptions.tolerance_pounds, problems)
        check_reserves_reconcile(tables["accounts.csv"], tables["reserves.csv"], tables["lines.csv"],
                                 assumptions.tolerance_pounds, problems)
        problems += [Problem("assumptions.toml", None, key, reason)
                     for key, reason in forecast_window_problems(
                         tables["reserves.csv"].rename(columns={"financial_year": "year"}), assumptions)]
    if problems or assumptions is None:
        raise InputError(problems)
    warnings += restricted_fund_warnings(tables["accounts.csv"], tables["reserves.csv"], tables["lines.csv"],
                                         assumptions.tolerance_pounds)
    return _as_inputs(tables, assumptions, file_checksums(directory), tuple(warnings))


def _as_inputs(tables: dict[str, pd.DataFrame], assumptions: Assumptions, checksums: dict[str, str],
               warnings: tuple[str, ...] = ()) -> Inputs:
    """Give downstream stages plain frames: ``year`` ints instead of labels, clean indexes."""

    def plain(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[WHERE_FILE, WHERE_ROW]).reset_index(drop=True)

    def years(frame: pd.DataFrame) -> pd.DataFrame:
        frame = plain(frame).rename(columns={"financial_year": "year"})
        frame["year"] = frame["year"].astype(int)
        return frame

    empty_trustees = pd.DataFrame(columns=["library_id", "year", "income", "expenditure", "closing_reserves"])
    trustees = tables.get("trustee_projections.csv")
    extensions = tables.get("lease_extensions.csv")
    no_extensions = pd.DataFrame({"library_id": pd.Series(dtype=str), "year": pd.Series(dtype=int),
                                  "years_added": pd.Series(dtype=float), "source": pd.Series(dtype=str)})
    return Inputs(
        libraries=plain(tables["libraries.csv"]),
        accounts=years(tables["accounts.csv"]).groupby(["library_id", "year", "line"], as_index=False, sort=False)[
            "amount"].sum(),  # a line in both columns (unrestricted and restricted) is one line of the library's accounts
        reserves=years(tables["reserves.csv"]),
        lines=plain(tables["lines.csv"]),
        taper=plain(tables["taper.csv"]).assign(grant_year=lambda t: t["grant_year"].astype(int)),
        one_off_grants=years(tables["one_off_grants.csv"]),
        trustee_projections=empty_trustees if trustees is None else years(trustees),
        lease_extensions=no_extensions if extensions is None else years(extensions),
        **({} if "reserves_risks.csv" not in tables else {"reserves_risks": plain(tables["reserves_risks.csv"])}),
        assumptions=assumptions,
        checksums=checksums,
        warnings=warnings,
    )


