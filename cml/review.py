"""Change since the last review: this forecast beside an earlier pack (``cml forecast --previous DIR``).

At the annual review a support officer asks what the latest accounts came in at against what was
forecast for that year, how the run-out year and the chance of running out moved, and why: which
input files and which assumptions changed. The earlier pack's ``run.json`` (checksums of every
input, the assumptions) and its ``projection.csv``, ``summary.csv`` and ``risk.csv`` say what was
forecast; nothing else of the earlier run is needed. Run twice on the same inputs, every library
shows no change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cml.errors import InputError, Problem
from cml.fy import fy_label, parse_fy
from cml.scenarios import BASELINE
from cml.workbook import NOT_REACHED

PREVIOUS_TABLES = {
    "projection.csv": ("scenario", "library_id", "financial_year", "actual_or_forecast", "income", "expenditure",
                       "free_reserves"),
    "summary.csv": ("scenario", "library_id", "run_out_year"),
    "risk.csv": ("scenario", "library_id", "financial_year", "probability_run_out"),
}
CHANCE_WITHIN_YEARS = 3  # the briefing's headline chance: within 3 years, counting the first forecast year
REVIEW_COLUMNS = ["library_id", "accounts_changed", "year_compared", "forecast_income", "actual_income",
                  "forecast_expenditure", "actual_expenditure", "forecast_free_reserves", "actual_free_reserves",
                  "free_reserves_difference", "previous_run_out_year", "run_out_year", "run_out_change_years",
                  "previous_chance_3_years", "chance_3_years", "previous_chance_by", "chance_by"]


@dataclass(frozen=True)
class Previous:
    """An earlier pack, as far as a review needs it."""

    folder: str
    run: dict
    projection: pd.DataFrame
    summary: pd.DataFrame
    risk: pd.DataFrame


@dataclass(frozen=True)
class Review:
    """This forecast against the earlier pack: per library, and the inputs and assumptions changed."""

    libraries: pd.DataFrame
    inputs_changed: list[str] = field(default_factory=list)
    assumptions_changed: list[str] = field(default_factory=list)
    previous_run_at: str = ""
    previous_accounts_year: str = ""
    previous_folder: str = ""

    @property
    def record(self) -> dict:
        """What ``run.json`` keeps of the review: which pack this one was compared with."""
        return {"folder": self.previous_folder, "run_at": self.previous_run_at,
                "latest_accounts_year": self.previous_accounts_year, "inputs_changed": self.inputs_changed,
                "assumptions_changed": self.assumptions_changed}


def load_previous(folder: Path) -> Previous:
    """The earlier pack's ``run.json`` and tables; a missing or unreadable file is named."""
    folder = Path(folder)
    label = str(folder)
    if not folder.is_dir():
        raise InputError([Problem(label, None, "--previous", "is not a folder holding an earlier pack")])
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError([Problem(f"{label}/run.json", None, None, f"cannot be read as an earlier pack's run.json: {err}")]) from err
    if not isinstance(run, dict) or not isinstance(run.get("inputs"), dict) or not isinstance(run.get("assumptions"), dict):
        raise InputError([Problem(f"{label}/run.json", None, None, "has no inputs and assumptions: not a cml pack's run.json")])
    tables, problems = {}, []
    for name, columns in PREVIOUS_TABLES.items():
        try:
            frame = pd.read_csv(folder / name, dtype={"library_id": str, "financial_year": str})
        except (OSError, ValueError) as err:
            problems.append(Problem(f"{label}/{name}", None, None, f"cannot be read: {err}"))
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            problems.append(Problem(f"{label}/{name}", 1, ", ".join(missing), "column missing: not a cml pack's table"))
            continue
        frame = frame[frame["scenario"] == BASELINE]
        tables[name] = frame.assign(library_id=frame["library_id"].str.lstrip("'"))  # undo the formula defusing
    if problems:
        raise InputError(problems)
    return Previous(label, run, tables["projection.csv"], tables["summary.csv"], tables["risk.csv"])


def flat_settings(table: dict, prefix: str = "") -> dict:
    """``{"growth": {"costs": 0.03}} -> {"growth.costs": 0.03}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_assumptions(before: dict, now: dict) -> list[str]:
    """Each assumption whose value differs, in words.

    >>> changed_assumptions({"growth": {"costs": 0.03, "income": 0.01}, "forecast": {"actuals_to": "2022/23"}},
    ...                     {"growth": {"costs": 0.025, "income": 0.01}, "forecast": {"actuals_to": ""}})
    ['forecast.actuals_to: none (instead of 2022/23)', 'growth.costs: 0.025 (instead of 0.03)']
    """
    old, new = flat_settings(before), flat_settings(now)
    def shown(value) -> str:
        return "none" if value == "" else str(value)

    return [f"{key}: {shown(new.get(key, 'not set'))} (instead of {shown(old.get(key, 'not set'))})"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def changed_inputs(before: dict, now: dict) -> list[str]:
    """Each input file added, removed or changed (by its SHA-256).

    >>> changed_inputs({"a.csv": "1", "b.csv": "2"}, {"a.csv": "1", "b.csv": "3", "c.toml": "4"})
    ['b.csv changed', 'c.toml is new']
    """
    words = [f"{name} {'changed' if name in before else 'is new'}" for name in sorted(now) if before.get(name) != now[name]]
    return words + [f"{name} is no longer there" for name in sorted(set(before) - set(now))]


def _chance_within(risk: pd.DataFrame, years: int) -> pd.DataFrame:
    """Per library: the chance of running out within ``years`` forecast years, and by which year."""
    start = risk.groupby("library_id")["year"].transform("min")
    at = risk[risk["year"] == start + years - 1].set_index("library_id")
    return pd.DataFrame({"chance": at["probability_run_out"], "by": at["year"].map(fy_label)})


def _run_out(summary: pd.DataFrame) -> pd.Series:
    """Per library: the run-out year label, or None where it does not come by the horizon."""
    labels = summary.set_index("library_id")["run_out_year"]
    return labels.where(labels.notna() & (labels != NOT_REACHED), None).astype(object)


def _as_year(labels: pd.Series, horizon: int) -> pd.Series:
    """Run-out year labels as years, one that does not come by the horizon as the year after it."""
    return labels.map(lambda label: parse_fy(label) if isinstance(label, str) else horizon + 1)


def compare(previous: Previous, projection: pd.DataFrame, summary: pd.DataFrame, risk: pd.DataFrame,
            checksums: dict, assumptions: dict) -> Review:
    """This run's baseline (``projection``, ``summary``, ``risk`` of the forecast) beside the
    earlier pack's: for each library the latest year that was a forecast then and is in the
    accounts now, forecast against actual; the run-out year and the chance of running out within
    three years, then and now; whether its accounts changed; and the inputs and assumptions changed."""
    now = projection[projection["scenario"] == BASELINE].assign(year=lambda t: t["year"].astype(int))
    then = previous.projection.assign(year=previous.projection["financial_year"].map(parse_fy))
    keys = ["library_id", "year"]
    both = now.merge(then, on=keys, how="outer", suffixes=("", "_then"), indicator=True)
    actual_now, actual_then = both["actual_or_forecast"] == "actual", both["actual_or_forecast_then"] == "actual"
    revised = actual_now & actual_then & ((both["free_reserves"] - both["free_reserves_then"]).abs() > 0.5)
    new_year = actual_now & ~actual_then
    accounts_changed = (revised | new_year | (actual_then & ~actual_now)).groupby(both["library_id"]).any()
    came_in = both[actual_now & (both["actual_or_forecast_then"] == "forecast")].sort_values("year").groupby("library_id").tail(1)
    came_in = came_in.set_index("library_id")
    table = pd.DataFrame(index=pd.Index(sorted(now["library_id"].unique()), name="library_id"))
    table["accounts_changed"] = accounts_changed.reindex(table.index, fill_value=True)
    table["year_compared"] = came_in["year"].map(fy_label, na_action="ignore")
    for figure in ("income", "expenditure", "free_reserves"):
        table[f"forecast_{figure}"] = came_in[f"{figure}_then"]
        table[f"actual_{figure}"] = came_in[figure]
    table["free_reserves_difference"] = table["actual_free_reserves"] - table["forecast_free_reserves"]
    table["previous_run_out_year"] = _run_out(previous.summary)
    table["run_out_year"] = _run_out(summary[summary["scenario"] == BASELINE])
    horizon = int(now["year"].max())
    table["run_out_change_years"] = (_as_year(table["run_out_year"], horizon)
                                     - _as_year(table["previous_run_out_year"], horizon)).astype(float)
    then_risk = previous.risk.assign(year=previous.risk["financial_year"].map(parse_fy))
    chance_then = _chance_within(then_risk, CHANCE_WITHIN_YEARS)
    chance_now = _chance_within(risk[risk["scenario"] == BASELINE], CHANCE_WITHIN_YEARS)
    table["previous_chance_3_years"], table["previous_chance_by"] = chance_then["chance"], chance_then["by"]
    table["chance_3_years"], table["chance_by"] = chance_now["chance"], chance_now["by"]
    run = previous.run
    return Review(table.reset_index()[REVIEW_COLUMNS],
                  changed_inputs(run.get("inputs", {}), checksums), changed_assumptions(run.get("assumptions", {}), assumptions),
                  str(run.get("run_at", "")), str(run.get("latest_accounts_year", "")), previous.folder)
