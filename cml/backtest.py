"""How good have such forecasts been? A rolling-origin backtest against the accounts.

For every cut-off year the data allows, the status quo forecast is re-run as if the accounts
stopped there (``forecast.actuals_to``), and each later year's forecast free reserves are set
against what the accounts show. Two naive forecasts made on the same cut-offs are the yardstick:

* ``flat`` - free reserves stay where they were at the cut-off;
* ``three_year_trend`` - free reserves move each year by their average change over the three
  years to the cut-off (fewer where the library is younger).

Errors are reported by horizon (years after the cut-off), with forecasts whose years ahead
include an abnormal (Covid) year apart (``through_covid``: a forecast made in 2018/19 of 2023/24
free reserves meets the closures, the council's contingency grant and the government's business
grants, which no forecast made before them could know), as mean absolute error and bias (forecast less actual). The forecast's
uncertainty is scored too: at each cut-off the status quo is also simulated
(:mod:`cml.simulation`, ``BACKTEST_DRAWS`` futures), and the report gives how often the actual
fell inside the middle 50% and 90% of the futures (a well-calibrated forecast: 50% and 90%) and
the CRPS, the ensemble's error in pounds (``mean|X - y| - 0.5 mean|X - X'|``), which for a
single-number forecast is its absolute error, so the naive forecasts' CRPS is their MAE. Red flags are scored
too: for each cut-off and target year, the libraries the forecast rated Red against those the
accounts show Red. The forecast's own method is whatever :func:`cml.projection.project_scenario`
does, so a better forecasting stage is measured by the same code. On illustrative data, every
figure here is illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cml.fy import fy_label
from cml.inputs import Inputs
from cml.projection import first_years, fit_for, project_scenario, simulate_run
from cml.simulation import Simulated
from cml.scenarios import Scenario

BACKTEST_COLUMNS = ["method", "cutoff", "target_year", "horizon", "library_id", "through_covid", "forecast", "actual",
                    "error", "forecast_red", "actual_red", "inside_50", "inside_90", "crps"]
BACKTEST_DRAWS = 1000  # futures per cut-off: coverage to about +-1.5 points per horizon


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
        run = project_scenario(at_cut, scenario, fit_for(at_cut))
        projection = run.projection
        targets = list(range(cutoff + 1, last + 1))
        ours = projection[projection["year"].isin(targets)].assign(method="cml").rename(
            columns={"year": "target_year", "free_reserves": "forecast"})
        ours["forecast_red"] = ours["rag"] == "Red"
        ours = ours.merge(ensemble_scores(simulate_run(run, scenario.assumptions, BACKTEST_DRAWS), free, targets),
                          on=["library_id", "target_year"], how="left")
        naive = naive_forecasts(free, cutoff, targets)
        both = pd.concat([ours[["method", "library_id", "target_year", "forecast", "forecast_red", "inside_50",
                                "inside_90", "crps"]], naive], ignore_index=True)
        eligible = both["library_id"].map(transfer) < cutoff
        frames.append(both[eligible].assign(cutoff=cutoff))
    rows = pd.concat(frames, ignore_index=True)
    keys = pd.MultiIndex.from_frame(rows[["library_id", "target_year"]])
    rows["actual"] = free.reindex(keys).to_numpy()
    rows["actual_red"] = actual_red.reindex(keys).fillna(False).to_numpy()
    rows = rows.dropna(subset=["actual"])
    rows["horizon"] = rows["target_year"] - rows["cutoff"]
    rows["through_covid"] = [any(cutoff < year <= target for year in abnormal)
                             for cutoff, target in zip(rows["cutoff"], rows["target_year"])]
    rows["error"] = rows["forecast"] - rows["actual"]
    rows["crps"] = rows["crps"].where(rows["method"] == "cml", rows["error"].abs())
    rows["forecast_red"] = rows["forecast_red"].astype("boolean")
    rows = rows[BACKTEST_COLUMNS].sort_values(["method", "cutoff", "target_year", "library_id"], ignore_index=True)
    flags, scores = red_flags(rows), score(rows)
    words = {True: "yes", False: "no"}  # plain text for CSV and Excel; blank where a naive forecast has no rating
    rows["forecast_red"] = rows["forecast_red"].map(words).astype(object).where(rows["forecast_red"].notna(), "")
    rows["actual_red"] = rows["actual_red"].map(words)
    for column in ("inside_50", "inside_90"):
        rows[column] = rows[column].map(words).astype(object).where(rows["method"] == "cml", "")
    return Backtest(rows, scores, flags)


def ensemble_scores(sim: Simulated, free: pd.Series, targets: list[int]) -> pd.DataFrame:
    """Per library and target year: whether the actual free reserves fell inside the futures'
    middle 50% and 90%, and the CRPS of the futures against the actual."""
    index = {library: i for i, library in enumerate(sim.libraries)}
    year_at = {int(year): j for j, year in enumerate(sim.years)}
    keys = [(library, year) for library in sim.libraries for year in targets
            if (library, year) in free.index and year in year_at]
    if not keys:
        return pd.DataFrame(columns=["library_id", "target_year", "inside_50", "inside_90", "crps"])
    lib = np.array([index[k[0]] for k in keys])
    yr = np.array([year_at[k[1]] for k in keys])
    samples = sim.free_reserves[:, lib, yr].astype(float)
    actual = free.reindex(pd.MultiIndex.from_tuples(keys)).to_numpy(dtype=float)
    q = np.quantile(samples, [0.05, 0.25, 0.75, 0.95], axis=0)
    return pd.DataFrame({"library_id": [k[0] for k in keys], "target_year": [k[1] for k in keys],
                         "inside_50": (q[1] <= actual) & (actual <= q[2]),
                         "inside_90": (q[0] <= actual) & (actual <= q[3]), "crps": crps(samples, actual)})


def crps(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of each column of ``samples`` (futures down the
    rows) against ``actual``: ``mean|X - y| - 0.5 mean|X - X'|``, the second term from the sorted
    futures (``../shared/TECH-NOTES.md``).

    Futures 1 to 100 against 50.5: mean distance 25, mean distance between futures 9,999 / 300,
    so 25 - 33.33 / 2 = 8.335; a point forecast's CRPS is its absolute error.

    >>> crps(np.arange(1.0, 101.0)[:, None], np.array([50.5])).tolist()
    [8.335]
    >>> crps(np.array([[7.0]]), np.array([10.0])).tolist()
    [3.0]
    """
    n = samples.shape[0]
    ordered = np.sort(samples, axis=0)
    weights = (2.0 * np.arange(1, n + 1) - n - 1)[:, None]
    spread = 2.0 * (weights * ordered).sum(axis=0) / n ** 2
    return np.abs(samples - actual[None, :]).mean(axis=0) - 0.5 * spread


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """By method, horizon and whether the years ahead cross the Covid closures: mean absolute error and bias of free
    reserves, the share of actuals inside the 50% and 90% intervals (the statistical forecast
    only), and the mean CRPS."""
    frame = rows.assign(abs_error=rows["error"].abs(), covered_50=rows["inside_50"].astype(float),
                        covered_90=rows["inside_90"].astype(float))
    grouped = frame.groupby(["through_covid", "horizon", "method"])
    table = grouped.agg(pairs=("error", "size"), mean_absolute_error=("abs_error", "mean"), bias=("error", "mean"),
                        covered_50=("covered_50", "mean"), covered_90=("covered_90", "mean"), crps=("crps", "mean"))
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

