"""``figures.xlsx``, the workbook an officer opens, and the CSVs' defence against formulas.

Every sheet is written from a frame of :func:`cml.outputs.tables`, column by column through one
registry, :data:`COLUMNS`: the plain heading with its unit and how the figures are shown. A
column the registry does not know still gets a heading (its name in words) and a format from
its type, so a table or column added to ``tables()`` appears without a change here.

xlsxwriter writes the workbook's structure: formats, headings, autofilter, frozen header, widths
fitted to the contents, and print set-up (landscape, one page wide, header row on every page).
The table cells themselves are then streamed into each sheet's XML a block of rows at a time,
built column-wise (:func:`_sheet_rows`): xlsxwriter's cell-by-cell API, even in
``constant_memory`` mode, took 135 s for 3,000 libraries (9 million cells) on the 2-core
machine, this takes a fraction of that (``benchmarks/workbook.py``). Money is rounded to
pennies before it is written, so rounding noise (-0.0000001) is £0, never (£0). Text is always
an inline string, never a formula, whatever it starts with.
"""

from __future__ import annotations

import math
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cml.simulation import PERCENTILES

NOT_REACHED = "beyond horizon"  # a year (run-out, fund exhausted) that does not come before the horizon
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ILLUSTRATIVE_BANNER = "ILLUSTRATIVE DATA: these figures are made up and are not any library's accounts."
MONEY_FORMAT = "£#,##0;(£#,##0);£0"
MONTHS_FORMAT = '0.0;"none";0.0'  # negative months of cover mean nothing to a reader: "none", as in the PDFs
COUNT_FORMAT = "#,##0"
NUMBER_FORMAT = "#,##0.00;(#,##0.00);0"
ROWS_PER_PRINTED_PAGE = 46  # A4 landscape, default margins, 15 pt rows: Excel's and LibreOffice's page break
MAX_WIDTH = 60
FROZEN_KEYS = ("scenario", "library_id", "name", "financial_year")
ROWS_PER_BLOCK = 20_000  # rows of cell XML built at once (memory stays flat at any size)
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Column:
    """How one column reads in the workbook: its heading (with the unit) and its kind
    (``money``, ``months``, ``count``, ``number``, ``share`` - a fraction shown as a percentage -
    or ``text``)."""

    heading: str
    kind: str = "text"


PEER_INDICATORS = {  # indicator: heading, kind, and what a blank means for the library's figure and for a quartile
    "months_of_reserves": ("Months of reserves, latest accounts", "months", "", ""),
    "reserves_change_share": ("Change in free reserves over three years, share of the earlier figure", "share",
                              " (blank: not ranked)", ""),
    "years_to_depletion": ("Years free reserves last at the latest year's deficit", "number",
                           " (blank: not depleting)", " (blank: not depleting)"),
    "council_share": ("Share of income from the council (grant and contingency fund), latest accounts", "share", "", ""),
    "self_generated_share": ("Share of income self-generated, latest accounts", "share", "", ""),
}
COLUMNS: dict[str, Column] = {
    # keys and labels
    "scenario": Column("Scenario"),
    "description": Column("What the scenario assumes"),
    "library_id": Column("Library id"),
    "name": Column("Library"),
    "financial_year": Column("Financial year"),
    "actual_or_forecast": Column("Actual or forecast"),
    "rag": Column("RAG"),
    "rag_now": Column("RAG now"),
    "first_forecast_year": Column("First forecast year"),
    "last_grant_year": Column("Last council grant year"),
    "run_out_year": Column("Year free reserves run out"),
    "fund_exhausted_in": Column("Year the contingency fund runs out"),
    "cost_years": Column("Years costs are counted over"),
    "annual_gap_years": Column("Years the gap is averaged over"),
    # money
    "council_grant": Column("Council grant (£)", "money"),
    "self_generated_income": Column("Self-generated income (£)", "money"),
    "other_income": Column("Other grants (£)", "money"),
    "fund_support": Column("Contingency fund support (£)", "money"),
    "income": Column("Income (£)", "money"),
    "expenditure": Column("Expenditure (£)", "money"),
    "surplus": Column("Surplus or (deficit) (£)", "money"),
    "deficit": Column("Deficits of libraries in deficit (£)", "money"),
    "opening_reserves": Column("Opening reserves (£)", "money"),
    "closing_reserves": Column("Closing reserves (£)", "money"),
    "free_reserves": Column("Free reserves (£)", "money"),
    "reserves_target": Column("Reserves target (£)", "money"),
    "horizon_closing_reserves": Column("Closing reserves at the horizon (£)", "money"),
    "horizon_free_reserves": Column("Free reserves at the horizon (£)", "money"),
    "change_from_baseline": Column("Change in free reserves from the baseline (£)", "money"),
    "annual_gap": Column("Annual gap to close (£ a year)", "money"),
    "council_cost": Column("Council cost (£)", "money"),
    "council_cost_total": Column("Council cost: total (£)", "money"),
    "council_cost_per_year": Column("Council cost a year (£)", "money"),
    "fund_paid_in_forecast": Column("Contingency fund paid (£)", "money"),
    "fund_claims_paid": Column("Fund claims paid (£)", "money"),
    "fund_claims_unmet": Column("Fund claims unmet (£)", "money"),
    "fund_closing": Column("Contingency fund closing balance (£)", "money"),
    "fund_unmet": Column("Fund claims unmet (£)", "money"),
    "opening": Column("Opening balance (£)", "money"),
    "top_ups": Column("Top-ups (£)", "money"),
    "payments": Column("Payments (£)", "money"),
    "closing": Column("Closing balance (£)", "money"),
    "unmet": Column("Claims unmet (£)", "money"),
    # months and counts
    "months_of_cover": Column("Months of cover", "months"),
    "months_of_cover_now": Column("Months of cover now", "months"),
    "months_of_cover_at_grant_end": Column("Months of cover at grant end", "months"),
    "libraries_red": Column("Libraries Red", "count"),
    "libraries_amber": Column("Libraries Amber", "count"),
    "libraries_green": Column("Libraries Green", "count"),
    "at_risk_first_forecast_year": Column("Libraries Red or Amber, first forecast year", "count"),
    "red_at_horizon": Column("Libraries Red at the horizon", "count"),
    "libraries_running_out": Column("Libraries whose free reserves run out", "count"),
    "libraries_running_out_supported": Column("Libraries whose free reserves run out, after fund top-ups", "count"),
    "libraries_kept_from_running_out": Column("Libraries kept from running out (vs status quo)", "count"),
    "years_of_service_gained": Column("Years the libraries keep running, gained (vs status quo)", "count"),
    "run_out_year_supported": Column("Year free reserves run out, after fund top-ups"),
    "fund_unmet_over_caps": Column("Fund need over the caps (£)", "money"),
    "fund_unmet_fund_empty": Column("Fund claims unpaid, fund empty (£)", "money"),
    "unmet_over_caps": Column("Need over the caps (£)", "money"),
    "unmet_fund_empty": Column("Unpaid, fund empty (£)", "money"),
    "council_new_money": Column("New council money (£)", "money"),
    "council_earmarked_fund": Column("Paid from the earmarked contingency fund (£)", "money"),
    "council_new_money_real": Column("New council money, real terms (£, first forecast year's prices)", "money"),
    "council_cost_total_real": Column("Council cost: total, real terms (£)", "money"),
    "extra_council_new_money": Column("Extra new council money over the status quo (£)", "money"),
    "extra_council_new_money_real": Column("Extra new council money over the status quo, real terms (£)", "money"),
    "extra_council_cost_total": Column("Extra council cost over the status quo, all sources (£)", "money"),
    "recurring_spending": Column("Recurring spending, one-off costs left out (£)", "money"),
    "fund_top_ups": Column("Fund top-ups to the reserves floor (£)", "money"),
    "free_reserves_supported": Column("Free reserves after fund top-ups (£)", "money"),
    "horizon_free_reserves_supported": Column("Free reserves at the horizon, after fund top-ups (£)", "money"),
    "rag_supported": Column("RAG after fund top-ups"),
    "kind": Column("Kind of claim"),
    "claimed": Column("Claimed (£)", "money"),
    "paid": Column("Paid (£)", "money"),
    "lease_end": Column("Lease ends"),
    "lease_years_remaining": Column("Lease years remaining", "number"),
    "extended": Column("Lease extended this year"),
    "extension": Column("Extension (recorded, extension or new lease)"),
    "fees": Column("Library's lease fees (£)", "money"),
    "short_of_security": Column("Short of funders' 10-year security"),
    "other_grants_factor": Column("Other grants as a multiple of their base", "number"),
    "cutoff": Column("Cut-off: accounts to"),
    "accounts_to": Column("Latest accounts used"),
    "target_year": Column("Year forecast"),
    "horizon": Column("Years ahead", "count"),
    "method": Column("Forecast method"),
    "through_covid": Column("Years ahead include the Covid closures"),
    "forecast": Column("Forecast free reserves (£)", "money"),
    "actual": Column("Actual free reserves (£)", "money"),
    "error": Column("Forecast less actual (£)", "money"),
    "forecast_red": Column("Forecast Red"),
    "actual_red": Column("Actually Red"),
    "pairs": Column("Forecasts scored", "count"),
    "mean_absolute_error": Column("Mean absolute error (£)", "money"),
    "bias": Column("Bias: mean of forecast less actual (£)", "money"),
    # the simulation (risk, portfolio_risk) and the fitted models (fits)
    "probability_run_out": Column("Chance free reserves have run out by this year", "share"),
    "libraries_run_out_mean": Column("Libraries run out by this year: average of the futures", "number"),
    "libraries_run_out_p10": Column("Libraries run out: 1 future in 10 has fewer", "number"),
    "libraries_run_out_p90": Column("Libraries run out: 1 future in 10 has more", "number"),
    "fund_balance_p10": Column("Contingency fund balance: 1 future in 10 lower (£)", "money"),
    "fund_balance_p50": Column("Contingency fund balance: middle future (£)", "money"),
    "fund_balance_p90": Column("Contingency fund balance: 1 future in 10 higher (£)", "money"),
    "probability_fund_exhausted": Column("Chance the contingency fund has run dry by this year", "share"),
    "income_growth": Column("Self-generated income growth used (log, a year)", "number"),
    "income_growth_percent": Column("Self-generated income growth used (% a year)", "number"),
    "income_fitted_growth": Column("Growth the pooled fit gives the library (log, a year)", "number"),
    "income_growth_sd": Column("Uncertainty of that growth (sd, log)", "number"),
    "income_weight": Column("Weight on the fit (against growth.income)", "share"),
    "income_points": Column("Years of accounts fitted", "count"),
    "cost_drift": Column("Cost drift beyond growth.costs (log, a year)", "number"),
    "inside_50": Column("Actual inside the middle 50% of futures"),
    "inside_90": Column("Actual inside the middle 90% of futures"),
    "covered_50": Column("Share of actuals inside the middle 50% of futures", "share"),
    "covered_90": Column("Share of actuals inside the middle 90% of futures", "share"),
    "crps": Column("CRPS: error of the whole forecast distribution (£)", "money"),
    "free_reserves_held": Column("Free reserves of the libraries that have some (£)", "money"),
    "free_reserves_short": Column("Shortfall of the libraries below nil (£)", "money"),
    # since the last review (review)
    "accounts_changed": Column("Accounts new or revised since the last review"),
    "year_compared": Column("Year forecast then, in the accounts now"),
    "forecast_income": Column("Income forecast for it then (£)", "money"),
    "actual_income": Column("Income in the accounts (£)", "money"),
    "forecast_expenditure": Column("Spending forecast for it then (£)", "money"),
    "actual_expenditure": Column("Spending in the accounts (£)", "money"),
    "forecast_free_reserves": Column("Free reserves forecast for it then (£)", "money"),
    "actual_free_reserves": Column("Free reserves in the accounts (£)", "money"),
    "free_reserves_difference": Column("Accounts less forecast (£)", "money"),
    "previous_run_out_year": Column("Year free reserves run out: last review"),
    "previous_chance_3_years": Column("Chance of running out within 3 years: last review", "share"),
    "chance_3_years": Column("Chance of running out within 3 years: now", "share"),
    "previous_chance_by": Column("Within 3 years then means by"),
    "chance_by": Column("Within 3 years now means by"),
    # the options appraisal's simulated outcomes (options)
    "simulated_running_out_mean": Column("Simulated: libraries run out by the horizon, average of the futures", "number"),
    "simulated_running_out_p10": Column("Simulated: 1 future in 10 has fewer run out", "number"),
    "simulated_running_out_p90": Column("Simulated: 1 future in 10 has more run out", "number"),
    "probability_fund_exhausted_at_horizon": Column("Chance the contingency fund has run dry by the horizon", "share"),
    "interim_exposure_1_in_10": Column("Council exposure in 1 future in 10: interim provision beyond the central count (£)",
                                       "money"),
    # the fundraising targets (targets)
    "policy_months": Column("Reserves policy (months of spending)", "number"),
    "from_financial_year": Column("Raised or saved every year from"),
    "headroom": Column("Closest free reserves come to the policy: above (below) it (£)", "money"),
    "headroom_financial_year": Column("Year they come closest"),
    "free_reserves_now": Column("Free reserves in the latest accounts (£)", "money"),
    "reserves_target_now": Column("Reserves policy then (£)", "money"),
    "rebuild_within_years": Column("Years allowed to rebuild to the policy", "count"),
    "rebuild_by_financial_year": Column("Back at the policy by"),
    "extra_income": Column("Extra income a year that keeps the policy (£)", "money"),
    "saving": Column("Or the saving a year that keeps it (£)", "money"),
    "confidence": Column("Confidence asked for: share of futures kept at the policy", "share"),
    "extra_income_at_confidence": Column("Extra income a year that keeps it in that share of futures (£)", "money"),
    "saving_at_confidence": Column("Or the saving a year (£)", "money"),
    "self_generated_now": Column("Self-generated income in the latest accounts (£)", "money"),
    "self_generated_financial_year": Column("Year of those accounts"),
    "extra_income_share": Column("Extra income as a share of it", "share"),
    "extra_income_a_week": Column("Extra income a week (£)", "money"),
    # the reserves requirement from each library's risks (reserves_requirement, reserves_risks)
    "requirement": Column("Reserves its risks call for (£)", "money"),
    "shortfall_1_in_10": Column("Simulated: free reserves below the middle future in 1 future in 10 (£)", "money"),
    "shortfall_year": Column("Year of that shortfall"),
    "holds": Column("Free reserves beyond what its risks call for: (short of it) (£)", "money"),
    "verdict": Column("Holds: short, short later, enough or far more than its risks need"),
    "lowest_free_reserves": Column("Lowest forecast free reserves (£)", "money"),
    "lowest_year": Column("Year of the lowest"),
    "below_requirement_from": Column("Forecast below the requirement from"),
    "risk": Column("Risk"),
    "basis": Column("How the impact is measured"),
    "of": Column("Income group or line it is a share of"),
    "of_label": Column("What it is a share of"),
    "impact": Column("Impact as entered (percent, months or pounds, by basis)", "number"),
    "lowest_1_in_10": Column("Lowest free reserves in 1 future in 10 (£)", "money"),
    "lowest_1_in_10_year": Column("Year of that low point"),
    "spare_at_lowest": Column("At that low point: above (below) the higher of requirement and policy (£)", "money"),
    "exposure": Column("Pounds the impact is a share or multiple of (£)", "money"),
    "probability": Column("Probability", "share"),
    "impact_pounds": Column("Impact (£)", "money"),
    "amount": Column("Probability x impact (£)", "money"),
    # what moves the answer (sensitivity)
    "step": Column("Step (sensitivity.toml)"),
    "label": Column("In words"),
    "setting": Column("Setting moved"),
    "direction": Column("Setting lower (down) or higher (up)"),
    "value": Column("Setting's value on this side", "number"),
    "run_out_year_baseline": Column("Year free reserves run out: this forecast"),
    "run_out_change_years": Column("Change in the run-out year (years; + later)", "number"),
    "beyond_horizon": Column("One side runs out after the horizon (the change is at least this)"),
    "horizon_free_reserves_baseline": Column("Free reserves at the horizon: this forecast (£)", "money"),
    "horizon_change": Column("Change in free reserves at the horizon (£)", "money"),
    "libraries_running_out_baseline": Column("Libraries running out by the horizon: this forecast", "count"),
    "libraries_running_out_change": Column("Change in libraries running out", "count"),
    "council_cost_baseline": Column("Council cost: this forecast (£)", "money"),
    "council_cost_change": Column("Change in the council's cost (£)", "money"),
    # among its peers (peers): each indicator, the portfolio's quartiles of it, and where the library stands
    "reserves_change_from": Column("Change in free reserves measured from the end of"),
    "reserves_change": Column("Change in free reserves over three years (£)", "money"),
    "libraries": Column("Libraries in the portfolio compared", "count"),
    **{indicator: Column(heading + blank, kind) for indicator, (heading, kind, blank, _) in PEER_INDICATORS.items()},
    **{f"{indicator}_{quartile}": Column(f"{heading}: {words} of all libraries{blank}", kind)
       for indicator, (heading, kind, _, blank) in PEER_INDICATORS.items()
       for quartile, words in (("lower_quartile", "lower quartile"), ("median", "median"),
                               ("upper_quartile", "upper quartile"))},
    **{f"{indicator}_standing": Column(f"{heading}: where the library stands")
       for indicator, (heading, *_) in PEER_INDICATORS.items()},
    **{f"free_reserves_p{p}": Column(f"Free reserves: {p}th percentile of the futures (£)", "money") for p in PERCENTILES},
    **{f"combined_free_reserves_p{p}": Column(f"All libraries' free reserves: {p}th percentile of the futures (£)",
                                              "money") for p in PERCENTILES},
}
# Families of columns named by a prefix: (prefix, heading with {rest} for the rest of the name, kind).
COLUMN_FAMILIES = [
    ("council_cost_", "Council cost: {rest} (£)", "money"),
    ("libraries_", "Libraries {rest}", "count"),
]
SHEET_NAMES = {"options": "Options", "scenarios": "Scenarios", "summary": "Summary", "portfolio": "Portfolio",
               "fund": "Fund claims", "fund_ledger": "Fund ledger", "leases": "Leases", "projection": "Projection",
               "backtest": "Backtest", "backtest_scores": "Backtest scores", "risk": "Risk by library",
               "portfolio_risk": "Risk, all libraries", "fits": "Fitted growth",
               "targets": "Fundraising targets", "sensitivity": "What moves the answer",
               "portfolio_sensitivity": "What moves it, all libraries",
               "reserves_requirement": "Reserves its risks need", "reserves_risks": "Reserves risks",
               "peers": "Among its peers", "review": "Since the last review"}
DEFINITIONS = [
    ("Free reserves", ("Unrestricted funds less designated funds and fixed assets (Charity Commission CC19): "
                      "what a library could spend on running costs.")),
    ("Closing reserves", "Opening reserves plus income less expenditure for the year."),
    ("Months of cover", ("Free reserves divided by one month of that year's expenditure. Shown as \"none\" when "
                        "free reserves are below zero.")),
    ("RAG", ("Red: free reserves below the Red line (months of cover, see Assumptions). Amber: below the higher "
            "of the Amber line and the library's own reserves policy. Green: otherwise.")),
    ("Year free reserves run out", ("The first forecast year in which free reserves fall below zero; "
                                   f"\"{NOT_REACHED}\" if that does not happen by the last forecast year.")),
    ("Annual gap to close", ("Expenditure less the library's own income (contingency fund payments left out), "
                            "averaged over the first three forecast years without the council's taper grant.")),
    ("Council cost", ("What the council pays (taper grant, contingency fund payments, running costs, fabric repairs, "
                     "lease fees) over the baseline's forecast years, the same years for every scenario.")),
    ("Contingency fund", ("Pays programme grants first, then building failures, then libraries whose free reserves "
                         "fall below a floor, fewest months of cover first, until it runs dry; what it cannot pay "
                         "is unmet.")),
    ("Among its peers", ("Each library's latest accounts beside all the libraries in the run (baseline): the median "
                         "is the middle library, a quarter lie below the lower quartile and a quarter above the upper "
                         "one (Excel's QUARTILE.INC). Change in free reserves: over three years, as a share of the "
                         "earlier figure (only in pounds, and not ranked, where that was nil or below). Years free "
                         "reserves last: divided by the latest year's deficit.")),
    ("Actual or forecast", "Actual: from the library's accounts. Forecast: projected by cml."),
    ("Money", ("Pounds, rounded to the penny and shown to the pound; negatives in brackets. Totals are computed from "
              "unrounded figures, so figures may not sum due to rounding.")),
]


def readable(name: str) -> str:
    """A column name in words: ``lease_years_remaining`` -> ``Lease years remaining``."""
    return name.replace("_", " ").strip().capitalize() or name


def column_spec(name: str, values: pd.Series | None = None) -> Column:
    """The registry's entry for ``name``; else its family's; else its name in words, with a
    kind from its values (whole numbers are counts, other numbers plain numbers, else text)."""
    if name in COLUMNS:
        return COLUMNS[name]
    for prefix, heading, kind in COLUMN_FAMILIES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return Column(heading.format(rest=readable(name[len(prefix):]).lower()), kind)
    if values is not None and pd.api.types.is_bool_dtype(values):
        return Column(readable(name))
    if values is not None and pd.api.types.is_integer_dtype(values):
        return Column(readable(name), "count")
    if values is not None and pd.api.types.is_float_dtype(values):
        return Column(readable(name), "number")
    return Column(readable(name))


def sheet_name(table: str) -> str:
    return SHEET_NAMES.get(table, readable(table))[:31]


def defuse(text: object) -> object:
    """Text a spreadsheet would run as a formula, made inert with a leading apostrophe.

    >>> defuse("=HYPERLINK(\\"http://x\\")"), defuse("-10% costs"), defuse("Anstey"), defuse(3.5)
    ('\\'=HYPERLINK("http://x")', "'-10% costs", 'Anstey', 3.5)
    """
    if isinstance(text, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def defused(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text value that starts like a formula defused (for CSVs)."""
    out = None
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        if risky.any():
            out = frame.copy() if out is None else out
            out[column] = values.where(~risky, "'" + values.astype(str))
    return frame if out is None else out


def pennies(values: pd.Series) -> np.ndarray:
    """Money rounded to the penny, half up; anything within half a penny of zero is 0."""
    array = values.to_numpy(dtype=float)
    rounded = np.sign(array) * np.floor(np.abs(array) * 100 + 0.5 + 1e-9) / 100
    rounded[np.abs(array) < 0.005] = 0.0
    return rounded + 0.0  # no negative zero


def _width(values: pd.Series, spec: Column, cells: np.ndarray | None) -> int:
    """Characters a column needs to show its longest value (estimated from the values, not drawn)."""
    heading_words = max((len(word) for word in spec.heading.split()), default=0)
    heading = min(len(spec.heading), 22)
    if spec.kind in ("money", "number", "count", "months", "share") and cells is not None:
        finite = cells[np.isfinite(cells)]
        biggest = float(np.abs(finite).max()) if finite.size else 0.0
        content = len(f"{biggest:,.0f}") + (3 if spec.kind != "count" else 0)
        if spec.kind == "number":
            content += 3
    else:
        text = values.dropna().astype(str)
        content = int(text.str.len().max()) if len(text) else 0
    return min(MAX_WIDTH, max(content, heading, heading_words, 6) + 2)


def _cells(values: pd.Series, spec: Column) -> np.ndarray | list:
    """The column's values as they are written: floats (pennies for money) or Python objects."""
    if spec.kind == "money":
        return pennies(values)
    if spec.kind in ("months", "number", "share"):
        return values.to_numpy(dtype=float)
    if spec.kind == "count" and pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float)
    return values.astype(object).where(values.notna(), None).tolist()


def printed_pages(rows: int, header_rows: int) -> int:
    """Pages a sheet prints on: one page wide, ``ROWS_PER_PRINTED_PAGE`` rows a page with the
    header repeated (the method ``benchmarks/workbook.py`` reports)."""
    per_page = ROWS_PER_PRINTED_PAGE - header_rows
    return max(1, math.ceil(rows / per_page))


def write_workbook(frames: dict[str, pd.DataFrame], path: Path, illustrative: bool,
                   notes: Iterable[tuple[str, str, str]] = ()) -> dict[str, int]:
    """Write ``figures.xlsx``: a Notes sheet first, then one sheet per frame. Returns the
    printed page count of each sheet (:func:`printed_pages`)."""
    import xlsxwriter

    path = Path(path)
    book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                           "strings_to_numbers": False})
    formats = {
        "money": book.add_format({"num_format": MONEY_FORMAT}),
        "months": book.add_format({"num_format": MONTHS_FORMAT}),
        "count": book.add_format({"num_format": COUNT_FORMAT}),
        "number": book.add_format({"num_format": NUMBER_FORMAT}),
        "share": book.add_format({"num_format": "0%"}),
        "text": None,
    }
    heading = book.add_format({"bold": True, "text_wrap": True, "valign": "top", "bottom": 1})
    banner = book.add_format({"bold": True, "font_color": "#B00000"})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    bold_top = book.add_format({"bold": True, "valign": "top", "text_wrap": True})
    pages = {"Notes": _write_notes(book, list(notes), illustrative, banner, bold_top, wrap)}
    bodies = []
    for number, (table, frame) in enumerate(frames.items(), start=2):
        name = sheet_name(table)
        specs, header_row = _write_sheet(book.add_worksheet(name), frame, illustrative, formats, heading, banner)
        bodies.append((f"xl/worksheets/sheet{number}.xml", frame, specs, header_row))
        pages[name] = printed_pages(len(frame) + 1, header_row + 1)
    book.close()
    styles = {kind: (None if fmt is None else fmt.xf_index) for kind, fmt in formats.items()}
    _stream_cells(path, bodies, styles)
    return pages


def _print_setup(sheet, header_row: int) -> None:
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(header_row)
    sheet.set_footer("&L&A&RPage &P of &N")


def _write_sheet(sheet, frame: pd.DataFrame, illustrative: bool, formats: dict, heading, banner):
    """A table's sheet without its cells: widths and formats per column, headings, frozen
    header, filter and print set-up. Returns the column specs and the header's row (0-based)."""
    header_row = 1 if illustrative else 0
    specs = [column_spec(str(column), frame[column]) for column in frame.columns]
    for index, (column, spec) in enumerate(zip(frame.columns, specs)):
        cells = _cells(frame[column], spec)
        numeric = cells if isinstance(cells, np.ndarray) else None
        sheet.set_column(index, index, _width(frame[column], spec, numeric), formats[spec.kind])
    frozen = 0
    while frozen < min(2, len(frame.columns)) and str(frame.columns[frozen]) in FROZEN_KEYS:
        frozen += 1
    sheet.freeze_panes(header_row + 1, frozen)
    _print_setup(sheet, header_row)
    sheet.set_row(header_row, 45)
    if illustrative:
        sheet.write_string(0, 0, ILLUSTRATIVE_BANNER, banner)
    for index, spec in enumerate(specs):
        sheet.write_string(header_row, index, spec.heading, heading)
    if frame.columns.size:
        sheet.autofilter(header_row, 0, header_row + max(len(frame), 1), len(frame.columns) - 1)
    return specs, header_row


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _xml_text(values: pd.Series) -> pd.Series:
    text = values.astype(str)
    if text.str.contains(r"[&<>\x00-\x1f\ufffe\uffff]", regex=True).any():
        text = (text.str.replace(_XML_UNSAFE, "", regex=True).str.replace("&", "&amp;", regex=False)
                .str.replace("<", "&lt;", regex=False).str.replace(">", "&gt;", regex=False))
    return text


def _column_cells(values: pd.Series, spec: Column, letter: str, rows: np.ndarray, style: int | None) -> np.ndarray:
    """One column's ``<c>`` elements for ``rows`` (Excel row numbers as text); '' for a blank."""
    refs = f'<c r="{letter}' + rows
    styled = "" if style is None else f' s="{style}"'
    cells = _cells(values, spec)
    if isinstance(cells, np.ndarray):
        shown = pd.Series(cells).astype(str).str.removesuffix(".0").fillna("").to_numpy(dtype=object)
        out = refs + f'"{styled}><v>' + shown + "</v></c>"
        out[~np.isfinite(cells)] = ""
        return out
    if pd.api.types.is_bool_dtype(values):
        cells = ["yes" if value else "no" for value in values]
    series = pd.Series(cells, dtype=object)
    present = series.notna().to_numpy()
    text = _xml_text(series.where(present, "")).to_numpy(dtype=object)
    out = refs + f'"{styled} t="inlineStr"><is><t xml:space="preserve">' + text + "</t></is></c>"
    out[~present] = ""
    return out


def _sheet_rows(frame: pd.DataFrame, specs: list[Column], first_row: int, styles: dict) -> Iterator[str]:
    """The sheet's ``<row>`` elements for every row of ``frame``, a block at a time;
    ``first_row`` is the first data row's Excel number."""
    letters = [_column_letter(i) for i in range(len(frame.columns))]
    for start in range(0, len(frame), ROWS_PER_BLOCK):
        block = frame.iloc[start:start + ROWS_PER_BLOCK]
        rows = np.arange(first_row + start, first_row + start + len(block)).astype(str).astype(object)
        line = '<row r="' + rows + '">'
        for column, spec, letter in zip(block.columns, specs, letters):
            line = line + _column_cells(block[column], spec, letter, rows, styles[spec.kind])
        yield "".join(line + "</row>")


def _stream_cells(path: Path, bodies: list, styles: dict) -> None:
    """Put each table's cells into its sheet's XML (between the header rows xlsxwriter wrote
    and ``</sheetData>``), and widen the sheet's dimension to match."""
    wanted = {name: (frame, specs, header_row) for name, frame, specs, header_row in bodies}
    temporary = path.with_name(path.name + ".cells")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED,
                                                          compresslevel=1) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename not in wanted:
                target.writestr(item, data)
                continue
            frame, specs, header_row = wanted[item.filename]
            xml = data.decode("utf-8").replace("<sheetData/>", "<sheetData></sheetData>", 1)
            last = f"{_column_letter(max(len(frame.columns) - 1, 0))}{header_row + 1 + len(frame)}"
            xml = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>', xml, count=1)
            head, tail = xml.split("</sheetData>", 1)
            with target.open(item.filename, "w") as out:  # a name, so the archive's compress level applies
                out.write(head.encode("utf-8"))
                for block in _sheet_rows(frame, specs, header_row + 2, styles):
                    out.write(block.encode("utf-8"))
                out.write(("</sheetData>" + tail).encode("utf-8"))
    shutil.move(temporary, path)


def _write_notes(book, notes: list[tuple[str, str, str]], illustrative: bool, banner, bold, wrap) -> int:
    """The Notes sheet: what the workbook is, the definitions, and the run's assumptions with
    their sources. ``notes`` rows are (section, item, text)."""
    sheet = book.add_worksheet("Notes")
    sheet.set_column(0, 0, 22)
    sheet.set_column(1, 1, 34)
    sheet.set_column(2, 2, 90)
    _print_setup(sheet, 0)
    sheet.set_portrait()
    row = 0
    if illustrative:
        sheet.write_string(row, 0, ILLUSTRATIVE_BANNER, banner)
        row += 1
    rows = [("About", "This workbook", ("The figures of one cml run, one sheet per table (the same as the CSVs "
             "beside it). Each sheet has a filter on its header row and prints one page wide.")),
            *[("Definitions", term, text) for term, text in DEFINITIONS], *notes]
    sheet.write_row(row, 0, ["Section", "Item", "Note"], bold)
    row += 1
    for section, item, text in rows:
        sheet.write_string(row, 0, str(section), bold)
        sheet.write_string(row, 1, str(item), wrap)
        sheet.write_string(row, 2, str(text), wrap)
        row += 1
    return printed_pages(row, 1)


def assumption_notes(raw: dict, source_file: Path | None) -> list[tuple[str, str, str]]:
    """One note per setting in ``assumptions.toml``: its value and, from the comment after it,
    its source."""
    sources = assumption_sources(source_file) if source_file is not None else {}
    notes = []
    for section, values in raw.items():
        if not isinstance(values, dict):
            notes.append(("Assumptions", section, str(values)))
            continue
        for key, value in values.items():
            source = sources.get(f"{section}.{key}")
            shown = f"{value!r}" if isinstance(value, str) else str(value)
            notes.append(("Assumptions", f"{section}.{key}", shown + (f"  (source: {source})" if source else "")))
    return notes


def assumption_sources(path: Path) -> dict[str, str]:
    """``section.key`` -> the comment written after the value in a TOML file."""
    sources: dict[str, str] = {}
    section = ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return sources
    for line in lines:
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        setting = re.match(r"\s*([A-Za-z0-9_]+)\s*=.*?#\s*(.+)$", line)
        if setting and not line.lstrip().startswith("#"):
            sources[f"{section}.{setting.group(1)}"] = setting.group(2).strip()
    return sources
