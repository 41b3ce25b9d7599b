"""Write the pack: CSV figures, the officers' workbook and the run's provenance, as one pack.

The whole pack is written into a staging folder beside the outputs folder and swapped in whole
(:mod:`cml.pack`): a run that fails part way (bad input, a failed check, a rendering error, a
kill) leaves the previous pack exactly as it was, and a reader never sees two runs' files mixed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cml import __version__
from cml.fy import fy_label, parse_fy, period_ends
from cml.inputs import Inputs
from cml.pack import FULL, OutputsError, OutputsFolder
from cml.projection import Forecast, comparison_years, option_comparison
from cml.scenarios import BASELINE
from cml.workbook import NOT_REACHED, assumption_notes, defused, write_workbook

PROJECTION_COLUMNS = [
    "library_id", "name", "financial_year", "scenario", "actual_or_forecast", "council_grant",
    "self_generated_income", "other_income", "fund_support", "income", "expenditure", "recurring_spending", "surplus",
    "opening_reserves", "closing_reserves", "free_reserves", "reserves_target", "months_of_cover", "rag",
    "fund_top_ups", "free_reserves_supported", "rag_supported",
]
PORTFOLIO_COLUMNS = [
    "scenario", "financial_year", "libraries_red", "libraries_amber", "libraries_green", "council_grant",
    "income", "expenditure", "deficit", "closing_reserves", "free_reserves", "free_reserves_held", "free_reserves_short",
    "fund_top_ups", "free_reserves_supported",
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
NOT_WITHIN_HORIZON = NOT_REACHED  # one phrase for a year that does not come by the horizon, in every table
ASSUMPTIONS_FILE = "assumptions.toml"


def accounts_age(latest_year: int, year_end: pd.Timestamp, run_at: datetime, stale_after_months: int) -> dict:
    """How old the latest accounts are when the pack is made: their year, the day they were made up
    to, and whether the run is more than ``stale_after_months`` after it (every page then says so).

    >>> accounts_age(2023, pd.Timestamp(2024, 3, 31), datetime(2026, 12, 2, tzinfo=UTC), 15)["accounts_stale"]
    True
    >>> accounts_age(2023, pd.Timestamp(2024, 3, 31), datetime(2025, 6, 30, tzinfo=UTC), 15)["accounts_stale"]
    False
    """
    months = (run_at.year - year_end.year) * 12 + (run_at.month - year_end.month) - (run_at.day < year_end.day)
    return {"latest_accounts_year": fy_label(latest_year), "latest_accounts_year_end": year_end.strftime("%Y-%m-%d"),
            "months_since_accounts": months, "accounts_stale": months > stale_after_months}


def run_info(inputs: Inputs) -> dict:
    """What every page footer and ``run.json`` say about this run, including how old the accounts are."""
    run_at = datetime.now(UTC)
    last = inputs.reserves.groupby("library_id")["year"].max()
    if inputs.assumptions.actuals_to is not None:
        last = last.clip(upper=inputs.assumptions.actuals_to)
    made_up_to = period_ends(last, inputs.libraries.set_index("library_id")["year_end"].reindex(last.index))
    stale_after = inputs.assumptions.stale_after_months
    return {
        "version": __version__,
        "run_at": run_at.isoformat(timespec="seconds"),
        "inputs_sha256": inputs.inputs_sha256,
        "illustrative": inputs.illustrative,
        **accounts_age(int(last.max()), made_up_to.max(), run_at, stale_after),
        # each briefing states its own library's accounts: year ends differ, and so may the latest year
        "library_accounts": {library_id: accounts_age(int(last[library_id]), made_up_to[library_id], run_at, stale_after)
                             for library_id in last.index},
    }


def scenario_comparison(forecast: Forecast) -> pd.DataFrame:
    """One row per scenario and library: run-out year, horizon reserves and their change from the
    baseline, and the council's cost and contingency fund claims paid and unmet over the
    comparison years (the baseline's forecast years, the same for every scenario)."""
    keys = ["scenario", "library_id"]
    table = forecast.summary[keys + ["name", "run_out_year", "horizon_free_reserves", "council_cost"]].copy()
    table["run_out_year"] = table["run_out_year"].fillna(NOT_REACHED)
    table["run_out_year_supported"] = forecast.summary["run_out_year_supported"].fillna(NOT_REACHED)
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
    """The frames written as CSV and as workbook sheets, in the order an officer reads them. The
    tables a reader quotes (options, scenarios, summary) say which accounts they start from."""
    accounts_to = forecast.libraries.set_index("library_id")["last_actual_year"]
    summary = forecast.summary[SUMMARY_COLUMNS].fillna({"run_out_year": NOT_REACHED, "run_out_year_supported": NOT_REACHED})
    scenarios = scenario_comparison(forecast)
    return {
        "options": option_comparison(forecast).fillna({"fund_exhausted_in": NOT_WITHIN_HORIZON}).assign(
            accounts_to=min(accounts_to, key=parse_fy)),
        "scenarios": scenarios.assign(accounts_to=scenarios["library_id"].map(accounts_to)),
        "summary": summary.assign(accounts_to=summary["library_id"].map(accounts_to)),
        "portfolio": forecast.portfolio[PORTFOLIO_COLUMNS],
        "fund": forecast.claims[FUND_COLUMNS],
        "fund_ledger": forecast.fund[FUND_LEDGER_COLUMNS],
        "leases": forecast.leases.assign(lease_end=forecast.leases["lease_end"].dt.strftime("%Y-%m-%d"))[LEASE_COLUMNS],
        "targets": forecast.targets,
        "sensitivity": forecast.sensitivity,
        "portfolio_sensitivity": forecast.portfolio_sensitivity,
        "reserves_requirement": forecast.reserves_requirement,
        "reserves_risks": forecast.reserves_risks,
        **({} if forecast.review is None else {"review": forecast.review.libraries}),
        "peers": forecast.peers.replace(np.inf, np.nan),  # blank: not depleting (the heading says so)
        "risk": forecast.risk.drop(columns="year"),
        "portfolio_risk": forecast.portfolio_risk.drop(columns="year"),
        "fits": forecast.fits,
        "projection": forecast.projection[PROJECTION_COLUMNS],
        **({} if forecast.backtest is None else {
            "backtest": forecast.backtest.rows.assign(cutoff=forecast.backtest.rows["cutoff"].map(fy_label),
                                                      target_year=forecast.backtest.rows["target_year"].map(fy_label)),
            "backtest_scores": forecast.backtest.scores}),
    }


def write_csvs(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """One CSV per table, unrounded, for further analysis; text that a spreadsheet would run as a
    formula (``=``, ``+``, ``-``, ``@`` first) gets a leading apostrophe."""
    for name, frame in frames.items():
        defused(frame).to_csv(folder / f"{name}.csv", index=False)


def workbook_notes(forecast: Forecast, inputs: Inputs, info: dict, inputs_dir: Path | None) -> list[tuple[str, str, str]]:
    """The Notes sheet's rows for this run: provenance, scenarios, assumptions and their sources."""
    notes = [("Run", "cml version", str(info["version"])), ("Run", "Run at (UTC)", str(info["run_at"])),
             ("Run", "Inputs SHA-256", str(info["inputs_sha256"])),
             ("Run", "Illustrative data", "yes: made-up accounts" if info["illustrative"] else "no"),
             ("Run", "Latest accounts", (f"{info['latest_accounts_year']} (year to {info['latest_accounts_year_end']}; "
                                        f"{info['months_since_accounts']} months before this run"
                                        f"{': OLD, ask for newer accounts' if info['accounts_stale'] else ''})"))]
    for row in forecast.scenarios.itertuples(index=False):
        parent = getattr(row, "inherits", None)
        inherits = f" (inherits {parent})" if isinstance(parent, str) and parent else ""
        notes.append(("Scenarios", str(row.scenario), f"{row.description}{inherits}"))
    source = None if inputs_dir is None else Path(inputs_dir) / ASSUMPTIONS_FILE
    return notes + assumption_notes(inputs.assumptions.raw, source)


def write_run_json(forecast: Forecast, inputs: Inputs, info: dict, path: Path, pack: dict | None = None) -> None:
    """Provenance: version, time, every input's SHA-256, the assumptions, the checks' results, and
    the pack's manifest (every file this run wrote, with its SHA-256)."""
    record = {
        **info,
        "inputs": inputs.checksums,
        "assumptions": inputs.assumptions.raw,
        "checks": [asdict(check) for check in forecast.checks],
        "models": list(forecast.fit_records),
        "all_checks_passed": all(check.passed for check in forecast.checks),
        **({} if forecast.review is None else {"previous_pack": forecast.review.record}),
        **(pack or {}),
    }
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


@dataclass
class Written:
    """What :func:`write_pack` did: the run info, and the old pack's files that are gone."""

    info: dict
    dropped: list[str] = field(default_factory=list)

    @property
    def dropped_pdfs(self) -> list[str]:
        return [name for name in self.dropped if name.endswith(".pdf")]


def write_pack(forecast: Forecast, inputs: Inputs, out_dir: Path,
               render: Callable[[Forecast, Path, dict], object] | None = None, *,
               folder: OutputsFolder | None = None, inputs_dir: Path | None = None,
               figures: bool = True) -> Written:
    """Write every output of a run into ``out_dir`` as one pack, swapped in whole.

    ``folder`` is the :class:`OutputsFolder` the caller already holds (locked and checked
    before the model ran); without one, the folder is locked here (a full pack). ``figures``
    False writes only the PDFs and ``run.json`` (``cml brief``).
    """
    if folder is None:
        with OutputsFolder(out_dir, inputs_dir, FULL) as held:
            return write_pack(forecast, inputs, out_dir, render, folder=held, inputs_dir=inputs_dir, figures=figures)
    info = run_info(inputs)
    staging = folder.stage()
    try:
        if figures:
            frames = tables(forecast)
            write_csvs(frames, staging)
            write_workbook(frames, staging / "figures.xlsx", inputs.illustrative,
                           workbook_notes(forecast, inputs, info, inputs_dir or folder.inputs_dir))
        if render is not None:
            render(forecast, staging, info)
        write_run_json(forecast, inputs, info, staging / "run.json", folder.pack_record(pdfs=render is not None))
    except OSError as err:
        raise OutputsError(f"cannot write the pack beside {out_dir}: {err.strerror or err}") from err
    swap = folder.commit()
    return Written(info, swap.dropped)
