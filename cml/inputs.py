"""Load and validate everything under ``inputs/``: stage 1 of the pipeline.

Every file is read as text first and each column converted with a check, so that a user's
mistake comes back as ``file:row: column: reason`` (all of them, not just the first) instead of a
traceback. Nothing downstream re-checks what is checked here.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from cml.errors import InputError, Problem
from cml.fy import fy_label, fy_of_dates, parse_fy
from cml.returns import SHEET_COLUMNS, ReturnUnreadable, read_return
from cml.schedule import PAYMENT_TIMINGS

LEASE_TYPES = ("full_repairing", "internal_repairing", "other")

# Lines the model itself refers to by name; load_inputs checks that lines.csv defines each.
CONTINGENCY_GRANT = "contingency_grant"
OTHER_GRANTS = "other_grants"
BUSINESS_GRANT = "covid_business_grant"
BUILDING_REPAIRS = "building_repairs"
BUILDING_FAILURE = "building_failure"
LEASE_FEES = "lease_fees"
ONE_OFF_COSTS = "one_off_costs"
FUND_TOP_UP = "fund_top_up"
MODEL_LINES = {  # line: (side, what cml uses it for)
    CONTINGENCY_GRANT: ("income", "contingency fund payments"),
    OTHER_GRANTS: ("income", "the funders' lease-security rule"),
    BUSINESS_GRANT: ("income", "government business grants in scenarios"),
    BUILDING_REPAIRS: ("expenditure", "building fabric costs (support option 2)"),
    BUILDING_FAILURE: ("expenditure", "building failures in scenarios"),
    LEASE_FEES: ("expenditure", "lease extension fees"),
    ONE_OFF_COSTS: ("expenditure", "a trustee's one-off cost"),
    FUND_TOP_UP: ("income", "contingency fund top-ups to a reserves floor, where a scenario pays them"),
}
SIDES = ("income", "expenditure")
FORECAST_METHODS = ("schedule", "one_off", "trend", "ratio", "interest")
YES_NO = ("yes", "no")
MAX_MONTHS = 120  # a reserves policy of more than ten years' spending is a typing slip, not a policy


@dataclass(frozen=True)
class Column:
    """How one column of an input file is read and checked.

    ``kind`` is one of ``text``, ``money`` (pounds, never negative), ``number``, ``count``
    (whole number >= 0), ``percent`` (0 to 100), ``months`` (0 to 120), ``date`` (ISO), ``fy``
    (``2018/19``) or ``choice``. ``minimum`` raises the floor of a numeric column where zero
    would mean nonsense (a lease of no years).
    """

    name: str
    kind: str = "text"
    choices: tuple[str, ...] = ()
    required: bool = True
    minimum: float | None = None


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
        Column("lease_years", "count", minimum=1),
        Column("reserves_target_months", "months"),
        Column("illustrative", "choice", YES_NO),
    ),
    key=("library_id",),
)
ACCOUNTS = TableSpec(
    "accounts.csv",
    (Column("library_id"), Column("financial_year", "fy"), Column("line"), Column("amount", "money")),
    key=("library_id", "financial_year", "line"),
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
TABLES = (LIBRARIES, ACCOUNTS, RESERVES, LINES, TAPER, ONE_OFF_GRANTS, TRUSTEE_PROJECTIONS, LEASE_EXTENSIONS)


@dataclass(frozen=True)
class Assumptions:
    """The model's settings from ``assumptions.toml`` (each value's source is noted there)."""

    horizon: int
    actuals_to: int | None
    base_years: int
    abnormal_years: tuple[int, ...]
    annual_gap_years: int
    cost_growth: float
    income_growth: float
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
    raw: dict = field(repr=False, compare=False, default_factory=dict)


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


def read_text_table(path: Path, label: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a CSV as strings, reporting a missing, empty or non-UTF-8 file as a problem."""
    if not path.exists():
        problems.append(Problem(label, None, None, "file is missing"))
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
    try:
        frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.ParserError as err:
        problems.append(_parser_problem(label, str(err)))
        return None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = frame.index + 2  # the line a user sees: header is line 1, blank lines counted
    frame = frame.apply(lambda col: col.fillna("").astype(str).str.strip())
    frame = frame[(frame != "").any(axis=1)]
    repeated = [c for c in frame.columns if re.fullmatch(r"(.+)\.\d+", c) and c.rsplit(".", 1)[0] in frame.columns]
    problems += [Problem(label, 1, c.rsplit(".", 1)[0], "column appears more than once in the header") for c in repeated]
    if frame.empty:
        problems.append(Problem(label, None, None, "file has a header but no rows"))
        return None
    return frame


def _parser_problem(label: str, message: str) -> Problem:
    """pandas' tokenizer error as a user's message: the line, and the usual cause."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if not found:
        return Problem(label, None, None, "not a readable CSV file: " + " ".join(message.split()))
    expected, line, saw = found.groups()
    return Problem(label, int(line), None, f"{saw} values where the header has {expected}: a number written with a "
                   "thousands comma (1,228.93) must be in quotes or written without it (1228.93)")


WHERE_FILE, WHERE_ROW = "_file", "_row"  # where each row came from, for messages after tables are merged


def check_table(frame: pd.DataFrame, spec: TableSpec, label: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Convert each column to its kind, collecting a problem for every bad cell and duplicate.

    ``frame`` is all strings, indexed by the row number the user sees. Returns the converted
    frame, or None when required columns are missing (nothing further can be checked).
    """
    missing = [c.name for c in spec.columns if c.required and c.name not in frame.columns]
    for name in missing:
        problems.append(Problem(label, 1, name, "required column is missing"))
    if missing:
        return None
    out = pd.DataFrame(index=frame.index)
    for column in spec.columns:
        if not column.required:  # an optional column may be left out or left blank
            raw = frame[column.name] if column.name in frame.columns else pd.Series("", index=frame.index)
            given = raw != ""
            converted = _convert(raw[given], column, label, problems) if given.any() else raw[given]
            out[column.name] = converted.reindex(raw.index) if column.kind != "text" else raw
            continue
        out[column.name] = _convert(frame[column.name], column, label, problems)
    _check_duplicates(frame, spec, label, problems)
    out[WHERE_FILE], out[WHERE_ROW] = label, frame.index
    return out


def _report(bad: pd.Series, raw: pd.Series, label: str, column: str, reason: str, problems: list[Problem]) -> None:
    for row in bad[bad].index:
        value = raw[row]
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
        number = pd.to_numeric(raw.str.replace(",", "", regex=False), errors="coerce")
        not_number = present & ~np.isfinite(number.fillna(np.nan))
        _report(not_number, raw, label, column.name, "'{value}' is not a number", problems)
        number = number.where(~not_number)
        if column.kind in ("money", "count", "percent", "months"):
            _report(number < 0, raw, label, column.name, "'{value}' must not be negative", problems)
        if column.minimum is not None:
            _report((number >= 0) & (number < column.minimum), raw, label, column.name, f"'{{value}}' must be at least {column.minimum:g}",
                    problems)
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
    if column.kind == "fy":
        years = raw.map(_fy_or_none)
        _report(present & years.isna(), raw, label, column.name,
                "'{value}' is not a financial year written like 2018/19", problems)
        return years.astype("Int64")
    raise ValueError(f"unknown column kind {column.kind!r}")


def _fy_or_none(label: str) -> int | None:
    try:
        return parse_fy(label)
    except ValueError:
        return None


def _check_duplicates(frame: pd.DataFrame, spec: TableSpec, label: str, problems: list[Problem]) -> None:
    keys = list(spec.key)
    first_row = frame.index.to_series().groupby([frame[k] for k in keys]).transform("first")
    for row in frame.index[frame.duplicated(keys, keep="first")]:
        key = ", ".join(f"{k}={frame.loc[row, k]}" for k in keys)
        problems.append(Problem(label, int(row), spec.key[-1], f"duplicate row ({key}) repeats row {first_row[row]}"))


# ---------------------------------------------------------------------------------------------
# Assumptions


def load_assumptions(path: Path, problems: list[Problem]) -> Assumptions | None:
    """Read ``assumptions.toml`` and check every setting's presence, type and range."""
    label = path.name
    if not path.exists():
        problems.append(Problem(label, None, None, "file is missing"))
        return None
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
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
    "forecast": {"horizon", "actuals_to", "base_years", "abnormal_years", "annual_gap_years"},
    "growth": {"costs", "income", "interest_on_balances"},
    "grant": {"payment"},
    "rag": {"red_below_months", "amber_below_months", "not_green_if_runs_out_within_years"},
    "council": {"interim_provision_per_year", "interim_provision_years"},
    "reporting": {"real_terms_inflation", "stale_after_months"},
    "checks": {"tolerance_pounds"},
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
        "annual_gap_years": _setting(raw, "forecast.annual_gap_years", int, label, problems, minimum=1, maximum=10),
        "cost_growth": _setting(raw, "growth.costs", float, label, problems, minimum=-0.5, maximum=1.0),
        "income_growth": _setting(raw, "growth.income", float, label, problems, minimum=-0.5, maximum=1.0),
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
    }
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
MAX_FORECAST_YEARS = 30  # beyond this a trend forecast means nothing, and costs grown for centuries overflow


def _flag(frame: pd.DataFrame, bad: pd.Series, column: str, reason: str, problems: list[Problem]) -> None:
    """A problem for every flagged row; ``reason`` may use ``{value}`` and any column, e.g. ``{library_id}``."""
    for _, row in frame[bad].iterrows():
        values = {k: (v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        values["value"] = values[column]
        if "financial_year" in values and pd.notna(values["financial_year"]):
            values["fy"] = fy_label(int(values["financial_year"]))
        problems.append(Problem(row[WHERE_FILE], int(row[WHERE_ROW]), column, reason.format(**values)))


def check_references(tables: dict[str, pd.DataFrame], assumptions: Assumptions, problems: list[Problem]) -> None:
    """Checks that need two files: ids and lines that exist, dates inside the horizon."""
    libraries, lines = tables["libraries.csv"], tables["lines.csv"]
    _flag(libraries, ~libraries["library_id"].str.fullmatch(SLUG), "library_id",
          "'{value}' should be lower-case letters, digits and hyphens (e.g. barrow-upon-soar): it names files", problems)
    known = set(libraries["library_id"])
    for name in ("accounts.csv", "reserves.csv", "trustee_projections.csv", "lease_extensions.csv"):
        if name in tables:
            frame = tables[name]
            _flag(frame, ~frame["library_id"].isin(known), "library_id", "'{value}' is not a known library_id (not in libraries.csv)", problems)
    for name in ("accounts.csv", "one_off_grants.csv"):
        frame = tables[name]
        _flag(frame, ~frame["line"].isin(set(lines["line"])), "line", "'{value}' is not a known line (not in lines.csv)", problems)
    trend_lines = set(lines.loc[lines["forecast"] == "trend", "line"])
    ratio = lines["forecast"] == "ratio"
    _flag(lines, ratio & ~lines["ratio_of"].isin(trend_lines), "ratio_of",
          "'{line}' is forecast as a ratio, so ratio_of must name a trend line it moves with (e.g. cafe), not '{value}'",
          problems)
    _flag(lines, ~ratio & (lines["ratio_of"] != ""), "ratio_of", "'{line}' is not forecast as a ratio: leave ratio_of blank",
          problems)
    if (lines["forecast"] == "interest").sum() > 1:
        problems.append(Problem("lines.csv", None, "forecast", "at most one line may be forecast as 'interest' (bank interest)"))
    if "lease_extensions.csv" in tables:
        extensions = tables["lease_extensions.csv"]
        start = fy_of_dates(libraries["lease_start"]).set_axis(libraries["library_id"].to_numpy())
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
    first_transfer = fy_of_dates(libraries["transfer_date"]).min()
    _flag(one_offs, (one_offs["financial_year"] < first_transfer) | (one_offs["financial_year"] > assumptions.horizon),
          "financial_year", f"{{fy}} is outside the years modelled ({fy_label(int(first_transfer))} to "
          f"{fy_label(assumptions.horizon)}), so this grant would never be paid", problems)
    _flag(libraries, libraries["transfer_date"] > pd.Timestamp(assumptions.horizon + 1, 3, 31), "transfer_date",
          f"'{{value}}' is after the forecast horizon {fy_label(assumptions.horizon)}", problems)
    taper = tables["taper.csv"]
    if sorted(taper["grant_year"].dropna().astype(int)) != list(range(1, len(taper) + 1)):
        problems.append(Problem("taper.csv", None, "grant_year", "grant years must run 1, 2, 3, ... with no gaps"))


def check_coverage(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """Every year of accounts has closing reserves and the reverse, with no gaps, and nothing
    (accounts, reserves or trustees' projection) before the transfer: a year with half its figures
    would be projected from silently wrong numbers."""
    libraries = tables["libraries.csv"]
    first_year = fy_of_dates(libraries["transfer_date"]).set_axis(libraries["library_id"].to_numpy())
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


def apply_returns(folder: Path, tables: dict[str, pd.DataFrame], problems: list[Problem]) -> dict[str, pd.DataFrame]:
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
            problems.append(Problem(label, None, None, str(err)))
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
            checked = check_table(frame, _return_spec(sheet), f"{label}[{sheet}]", problems)
            if checked is None:
                continue
            target = RETURN_TABLES[sheet].name
            current = tables.get(target, checked.iloc[:0].assign(library_id=""))
            replaced = (current["library_id"] == library_id) & current["financial_year"].isin(set(checked["financial_year"]))
            tables[target] = pd.concat([current[~replaced], checked.assign(library_id=library_id)], ignore_index=True)
    return tables


# ---------------------------------------------------------------------------------------------
# The public entry point


def file_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every input file, recorded in ``run.json`` and on every page."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def load_inputs(directory: Path) -> Inputs:
    """Read and check every input under ``directory``; raise :class:`InputError` listing all problems."""
    directory = Path(directory)
    problems: list[Problem] = []
    if not directory.is_dir():
        raise InputError([Problem(str(directory), None, None, "inputs folder does not exist")])
    assumptions = load_assumptions(directory / "assumptions.toml", problems)
    tables: dict[str, pd.DataFrame] = {}
    for spec in TABLES:
        path = directory / spec.name
        if spec.optional and not path.exists():
            continue
        raw = read_text_table(path, spec.name, problems)
        checked = None if raw is None else check_table(raw, spec, spec.name, problems)
        if checked is not None:
            tables[spec.name] = checked
    if not problems:
        tables = apply_returns(directory / "returns", tables, problems)
    if not problems and assumptions is not None:
        check_references(tables, assumptions, problems)
    if not problems:
        check_coverage(tables, problems)
    if not problems:
        check_reserves_reconcile(tables["accounts.csv"], tables["reserves.csv"], tables["lines.csv"],
                                 assumptions.tolerance_pounds, problems)
        problems += [Problem("assumptions.toml", None, key, reason)
                     for key, reason in forecast_window_problems(
                         tables["reserves.csv"].rename(columns={"financial_year": "year"}), assumptions)]
    if problems or assumptions is None:
        raise InputError(problems)
    return _as_inputs(tables, assumptions, file_checksums(directory))


def _as_inputs(tables: dict[str, pd.DataFrame], assumptions: Assumptions, checksums: dict[str, str]) -> Inputs:
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
        accounts=years(tables["accounts.csv"]),
        reserves=years(tables["reserves.csv"]),
        lines=plain(tables["lines.csv"]),
        taper=plain(tables["taper.csv"]).assign(grant_year=lambda t: t["grant_year"].astype(int)),
        one_off_grants=years(tables["one_off_grants.csv"]),
        trustee_projections=empty_trustees if trustees is None else years(trustees),
        lease_extensions=no_extensions if extensions is None else years(extensions),
        assumptions=assumptions,
        checksums=checksums,
    )


