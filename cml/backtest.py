"""How good have such forecasts been? A rolling-origin backtest against the accounts.

For every cut-off year the data allows, the status quo forecast is re-run as if the accounts
stopped there (``forecast.actuals_to``), and each later year's forecast free reserves are set
against what the accounts show. Two naive forecasts made on the same cut-offs are the yardstick:

* ``flat`` - free reserves stay where they were at the cut-off;
* ``three_year_trend`` - free reserves move each year by their average change over the three
  years to the cut-off (fewer where the library is younger).

Errors are reported by horizon (years after the cut-off), with targets inside the abnormal
(Covid) years apart, as mean absolute error and bias (forecast less actual). Red flags are scored
too: for each cut-off and target year, the libraries the forecast rated Red against those the
accounts show Red. The forecast's own method is whatever :func:`cml.projection.project_scenario`
does, so a better forecasting stage is measured by the same code. On illustrative data, every
figure here is illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from cml.fy import fy_label
from cml.inputs import Inputs
from cml.projection import first_years, fit_for, project_scenario
from cml.scenarios import Scenario

BACKTEST_COLUMNS = ["method", "cutoff", "target_year", "horizon", "library_id", "covid_target", "forecast", "actual",
                    "error", "forecast_red", "actual_red"]


@dataclass(frozen=True)
class Backtest:
    """Every forecast-against-actual pair (``rows``), and the scores by method and horizon."""

    rows: pd.DataFrame
    scores: pd.DataFrame
    flags: pd.DataFrame


def actual_free_reserves(inputs: Inputs) -> pd.Series:
    """Free reserves (CC19) per library and year from ``reserves.csv``."""
    r = inputs.reserves
    return pd.Series((r["unrestricted"] - r["designated"] - r["fixed_assets"]).to_numpy(),
                     index=pd.MultiIndex.from_frame(r[["library_id", "year"]]))


def cutoffs(inputs: Inputs) -> list[int]:
    """Cut-offs with at least one later year of accounts and one library with a full year before them."""
    last = int(inputs.reserves["year"].max())
    first_full = int((first_years(inputs.libraries) + 1).min())
    return list(range(first_full, last))


def naive_forecasts(free: pd.Series, cutoff: int, targets: list[int]) -> pd.DataFrame:
    """The two naive forecasts of free reserves made at ``cutoff`` for ``targets``."""
    wide = free.unstack("year")
    known = wide.loc[:, [y for y in wide.columns if y <= cutoff]]
    at_cut = known[cutoff].dropna()
    window = known.loc[at_cut.index, [y for y in known.columns if y >= cutoff - 3]]
    step = window.diff(axis=1).mean(axis=1).fillna(0.0)
    rows = []
    for target in targets:
        h = target - cutoff
        rows.append(pd.DataFrame({"library_id": at_cut.index, "target_year": target, "method": "flat",
                                  "forecast": at_cut.to_numpy()}))
        rows.append(pd.DataFrame({"library_id": at_cut.index, "target_year": target, "method": "three_year_trend",
                                  "forecast": (at_cut + h * step).to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def run_backtest(inputs: Inputs, baseline: Scenario, full_run: pd.DataFrame) -> Backtest:
    """Re-run the status quo from every cut-off and score it and the naive forecasts against the accounts.

    Only libraries with a full year of accounts at the cut-off are scored (a part-year base would
    test the transfer, not the method). ``actual_red`` uses the RAG of ``full_run``, the status
    quo's projection from all the accounts (``library_id, year, rag``), which the run already made.
    """
    free = actual_free_reserves(inputs)
    last = int(inputs.reserves["year"].max())
    transfer = first_years(inputs.libraries)
    actual_red = full_run.set_index(["library_id", "year"])["rag"] == "Red"
    abnormal = set(inputs.assumptions.abnormal_years)
    frames = []
    for cutoff in cutoffs(inputs):
        scenario = replace(baseline, assumptions=replace(baseline.assumptions, actuals_to=cutoff))
        at_cut = replace(inputs, assumptions=scenario.assumptions)
        projection = project_scenario(at_cut, scenario, fit_for(at_cut)).projection
        targets = list(range(cutoff + 1, last + 1))
        ours = projection[projection["year"].isin(targets)].assign(method="cml").rename(
            columns={"year": "target_year", "free_reserves": "forecast"})
        ours["forecast_red"] = ours["rag"] == "Red"
        naive = naive_forecasts(free, cutoff, targets)
        both = pd.concat([ours[["method", "library_id", "target_year", "forecast", "forecast_red"]], naive],
                         ignore_index=True)
        eligible = both["library_id"].map(transfer) < cutoff
        frames.append(both[eligible].assign(cutoff=cutoff))
    rows = pd.concat(frames, ignore_index=True)
    keys = pd.MultiIndex.from_frame(rows[["library_id", "target_year"]])
    rows["actual"] = free.reindex(keys).to_numpy()
    rows["actual_red"] = actual_red.reindex(keys).fillna(False).to_numpy()
    rows = rows.dropna(subset=["actual"])
    rows["horizon"] = rows["target_year"] - rows["cutoff"]
    rows["covid_target"] = rows["target_year"].isin(abnormal)
    rows["error"] = rows["forecast"] - rows["actual"]
    rows["forecast_red"] = rows["forecast_red"].astype("boolean")
    rows = rows[BACKTEST_COLUMNS].sort_values(["method", "cutoff", "target_year", "library_id"], ignore_index=True)
    flags = red_flags(rows)
    words = {True: "yes", False: "no"}  # plain text for CSV and Excel; blank where a naive forecast has no rating
    rows["forecast_red"] = rows["forecast_red"].map(words).astype(object).where(rows["forecast_red"].notna(), "")
    rows["actual_red"] = rows["actual_red"].map(words)
    return Backtest(rows, score(rows), flags)


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error and bias of free reserves by method, horizon and Covid or normal target."""
    grouped = rows.assign(abs_error=rows["error"].abs()).groupby(["covid_target", "horizon", "method"])
    table = grouped.agg(pairs=("error", "size"), mean_absolute_error=("abs_error", "mean"), bias=("error", "mean"))
    return table.reset_index()


def red_flags(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cut-off horizon: libraries actually Red, how many the forecast flagged Red, and false alarms."""
    ours = rows[rows["method"] == "cml"]
    table = ours.groupby("horizon").apply(lambda g: pd.Series({
        "actually_red": int(g["actual_red"].sum()),
        "flagged_in_advance": int((g["actual_red"] & g["forecast_red"].fillna(False)).sum()),
        "false_alarms": int((~g["actual_red"] & g["forecast_red"].fillna(False)).sum()),
    }), include_groups=False)
    return table.reset_index()


def describe_cutoffs(rows: pd.DataFrame) -> str:
    """The cut-offs scored, as a range of financial years."""
    years = sorted(rows["cutoff"].unique())
    return f"{fy_label(int(years[0]))} to {fy_label(int(years[-1]))}" if years else ""

