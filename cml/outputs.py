"""Write the pack: CSV figures, the officers' workbook and the run's provenance, atomically.

Everything is written into a staging folder inside the outputs folder first; only when every
file has been written are they moved into place. A run that fails part way (bad input, a failed
check, a rendering error) therefore leaves the previous pack exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from cml import __version__
from cml.fy import fy_end, fy_label
from cml.inputs import Inputs
from cml.projection import Forecast, comparison_years, option_comparison
from cml.scenarios import BASELINE

PROJECTION_COLUMNS = [
    "library_id", "name", "financial_year", "scenario", "actual_or_forecast", "council_grant",
    "self_generated_income", "other_income", "fund_support", "income", "expenditure", "recurring_spending", "surplus",
    "opening_reserves", "closing_reserves", "free_reserves", "reserves_target", "months_of_cover", "rag",
    "fund_top_ups", "free_reserves_supported", "rag_supported",
]
PORTFOLIO_COLUMNS = [
    "scenario", "financial_year", "libraries_red", "libraries_amber", "libraries_green", "council_grant",
    "income", "expenditure", "deficit", "closing_reserves", "free_reserves", "fund_top_ups", "free_reserves_supported",
    "council_cost_council_grant", "council_cost_fund_payments", "council_cost_running_costs",
    "council_cost_fabric_repairs", "council_cost_lease_fees", "council_cost_interim_provision", "council_cost_total",
    "council_new_money", "fund_closing", "fund_unmet_over_caps", "fund_unmet_fund_empty",
]
FUND_COLUMNS = ["scenario", "library_id", "name", "financial_year", "kind", "claimed", "paid", "unmet_over_caps",
                "unmet_fund_empty"]
FUND_LEDGER_COLUMNS = ["scenario", "financial_year", "opening", "top_ups", "payments", "closing", "unmet_over_caps",
                       "unmet_fund_empty"]
LEASE_COLUMNS = ["scenario", "library_id", "financial_year", "lease_end", "lease_years_remaining", "extended",
                 "extension", "fees", "short_of_security", "other_grants_factor"]
SUMMARY_COLUMNS = [
    "scenario", "library_id", "name", "rag_now", "months_of_cover_now", "last_grant_year",
    "months_of_cover_at_grant_end", "run_out_year", "run_out_year_supported", "horizon_closing_reserves",
    "horizon_free_reserves", "horizon_free_reserves_supported", "annual_gap", "annual_gap_years", "council_cost",
]
NOT_WITHIN_HORIZON = "not within horizon"  # options.csv's word for a contingency fund that never runs dry
MONEY_FORMAT = '£#,##0;[Red](£#,##0);"-"'
MONTHS_FORMAT = "0.0"
NOT_MONEY = {"months_of_cover", "months_of_cover_now", "months_of_cover_at_grant_end"}


def accounts_age(latest_year: int, run_at: datetime, stale_after_months: int) -> dict:
    """How old the latest accounts are when the pack is made: their year, the date that year ended,
    and whether the run is more than ``stale_after_months`` after it (every page then says so).

    >>> accounts_age(2023, datetime(2026, 12, 2, tzinfo=UTC), 15)["accounts_stale"]
    True
    >>> accounts_age(2023, datetime(2025, 6, 30, tzinfo=UTC), 15)["accounts_stale"]
    False
    """
    year_end = fy_end(latest_year)
    months = (run_at.year - year_end.year) * 12 + (run_at.month - year_end.month) - (run_at.day < year_end.day)
    return {"latest_accounts_year": fy_label(latest_year), "latest_accounts_year_end": year_end.strftime("%Y-%m-%d"),
            "months_since_accounts": months, "accounts_stale": months > stale_after_months}


def run_info(inputs: Inputs) -> dict:
    """What every page footer and ``run.json`` say about this run, including how old the accounts are."""
    run_at = datetime.now(UTC)
    latest = int(inputs.reserves["year"].max())
    if inputs.assumptions.actuals_to is not None:
        latest = min(latest, inputs.assumptions.actuals_to)
    return {
        "version": __version__,
        "run_at": run_at.isoformat(timespec="seconds"),
        "inputs_sha256": inputs.inputs_sha256,
        "illustrative": inputs.illustrative,
        **accounts_age(latest, run_at, inputs.assumptions.stale_after_months),
    }


def scenario_comparison(forecast: Forecast) -> pd.DataFrame:
    """One row per scenario and library: run-out year, horizon reserves and their change from the
    baseline, and the council's cost and contingency fund claims paid and unmet over the
    comparison years (the baseline's forecast years, the same for every scenario)."""
    keys = ["scenario", "library_id"]
    table = forecast.summary[keys + ["name", "run_out_year", "horizon_free_reserves", "council_cost"]].copy()
    table["run_out_year"] = table["run_out_year"].fillna("beyond horizon")
    table["run_out_year_supported"] = forecast.summary["run_out_year_supported"].fillna("beyond horizon")
    baseline = table[table["scenario"] == BASELINE].set_index("library_id")["horizon_free_reserves"]
    table["change_from_baseline"] = table["horizon_free_reserves"] - table["library_id"].map(baseline)
    claims = forecast.claims.merge(comparison_years(forecast.projection), on=["library_id", "year"])
    claims = claims.groupby(keys)[["paid", "unmet_over_caps", "unmet_fund_empty"]].sum().rename(
        columns={"paid": "fund_claims_paid", "unmet_over_caps": "fund_unmet_over_caps",
                 "unmet_fund_empty": "fund_unmet_fund_empty"})
    table = table.join(claims, on=keys)
    paid_columns = ["fund_claims_paid", "fund_unmet_over_caps", "fund_unmet_fund_empty"]
    table[paid_columns] = table[paid_columns].fillna(0.0)
    return table


def tables(forecast: Forecast) -> dict[str, pd.DataFrame]:
    """The frames written as CSV and as workbook sheets, in the order an officer reads them."""
    return {
        "options": option_comparison(forecast).fillna({"fund_exhausted_in": NOT_WITHIN_HORIZON}),
        "scenarios": scenario_comparison(forecast),
        "summary": forecast.summary[SUMMARY_COLUMNS],
        "portfolio": forecast.portfolio[PORTFOLIO_COLUMNS],
        "fund": forecast.claims[FUND_COLUMNS],
        "fund_ledger": forecast.fund[FUND_LEDGER_COLUMNS],
        "leases": forecast.leases.assign(lease_end=forecast.leases["lease_end"].dt.strftime("%Y-%m-%d"))[LEASE_COLUMNS],
        "projection": forecast.projection[PROJECTION_COLUMNS],
        **({} if forecast.backtest is None else {
            "backtest": forecast.backtest.rows.assign(cutoff=forecast.backtest.rows["cutoff"].map(fy_label),
                                                      target_year=forecast.backtest.rows["target_year"].map(fy_label)),
            "backtest_scores": forecast.backtest.scores}),
    }


def write_csvs(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """One CSV per table (projection, portfolio, summary, scenarios, fund); unrounded, for further analysis."""
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)


def write_workbook(frames: dict[str, pd.DataFrame], path: Path, illustrative: bool) -> None:
    """``figures.xlsx``: one sheet per table, money as £ with thousands separators, frozen headers."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=name.capitalize(), index=False, startrow=1 if illustrative else 0)
            sheet = writer.sheets[name.capitalize()]
            header_row = 2 if illustrative else 1
            if illustrative:
                sheet["A1"] = "ILLUSTRATIVE DATA: these figures are made up and are not any library's accounts."
                sheet["A1"].font = Font(bold=True, color="B00000")
            sheet.freeze_panes = sheet.cell(row=header_row + 1, column=3)
            for index, column in enumerate(frame.columns, start=1):
                letter = get_column_letter(index)
                sheet.column_dimensions[letter].width = max(12, min(40, len(column) + 2))
                sheet.cell(row=header_row, column=index).font = Font(bold=True)
                if pd.api.types.is_float_dtype(frame[column]):
                    number_format = MONTHS_FORMAT if column in NOT_MONEY else MONEY_FORMAT
                    for cell in sheet[letter][header_row:]:
                        cell.number_format = number_format


def write_run_json(forecast: Forecast, inputs: Inputs, info: dict, path: Path) -> None:
    """Provenance: version, time, every input's SHA-256, the assumptions, and the checks' results."""
    record = {
        **info,
        "inputs": inputs.checksums,
        "assumptions": inputs.assumptions.raw,
        "checks": [asdict(check) for check in forecast.checks],
        "all_checks_passed": all(check.passed for check in forecast.checks),
    }
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


@contextmanager
def staged(out_dir: Path):
    """Yield a staging folder; on success move its contents over ``out_dir``'s, else discard it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield staging
        for entry in sorted(staging.iterdir()):
            target = out_dir / entry.name
            if target.is_dir() and entry.is_dir():
                retired = Path(tempfile.mkdtemp(prefix=".retired-", dir=out_dir))
                os.replace(target, retired / entry.name)
                os.replace(entry, target)
                shutil.rmtree(retired)
            else:
                os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_pack(forecast: Forecast, inputs: Inputs, out_dir: Path,
               render: Callable[[Forecast, Path, dict], object] | None = None) -> dict:
    """Write every output of a run into ``out_dir`` atomically; return the run info."""
    info = run_info(inputs)
    with staged(Path(out_dir)) as staging:
        frames = tables(forecast)
        write_csvs(frames, staging)
        write_workbook(frames, staging / "figures.xlsx", inputs.illustrative)
        if render is not None:
            render(forecast, staging, info)
        write_run_json(forecast, inputs, info, staging / "run.json")
    return info
