"""What moves the answer: each library's run-out year and horizon free reserves when one
assumption moves by its step (``inputs/sensitivity.toml``), the tornado in every briefing.

Each side of each step is a whole re-run of the central forecast (:class:`cml.scenarios.StepRun`,
projected like any scenario), so a step reaches everything the setting reaches: the fitted
models where it is an assumption they use, the contingency fund that links the libraries. This
module only compares the runs with the baseline.
"""

from __future__ import annotations

import pandas as pd

from cml.fy import fy_label
from cml.scenarios import StepRun

SENSITIVITY_COLUMNS = ["step", "label", "setting", "direction", "value", "library_id", "run_out_year",
                       "run_out_year_baseline", "run_out_change_years", "beyond_horizon", "horizon_free_reserves",
                       "horizon_free_reserves_baseline", "horizon_change"]


PORTFOLIO_SENSITIVITY_COLUMNS = ["step", "label", "setting", "direction", "value", "libraries_running_out",
                                 "libraries_running_out_baseline", "libraries_running_out_change", "council_cost",
                                 "council_cost_baseline", "council_cost_change"]


def _label(year: float) -> str:
    return fy_label(int(year))


def run_out_and_horizon(projection: pd.DataFrame) -> pd.DataFrame:
    """Per library (index): the first forecast year free reserves fall below nil (NaN: not by the
    horizon) and free reserves at the horizon."""
    ahead = projection[projection["actual_or_forecast"] == "forecast"].sort_values("year")
    run_out = ahead[ahead["free_reserves"] < 0].groupby("library_id")["year"].first()
    horizon = ahead.groupby("library_id")["free_reserves"].last()
    return pd.DataFrame({"run_out": run_out.reindex(horizon.index), "horizon_free_reserves": horizon})


def sensitivity_table(baseline: pd.DataFrame, steps: list[tuple[StepRun, pd.DataFrame]], horizon: int) -> pd.DataFrame:
    """One row per step, side and library: the run-out year and horizon free reserves of the
    step's run beside the baseline's (``baseline`` and each step's frame from
    :func:`run_out_and_horizon`), and the change.

    A run-out year beyond the horizon is counted as the year after it, so a change that takes a
    library past the horizon is "at least" that many years (``beyond_horizon``)."""
    rows = []
    for run, result in steps:
        both = result.join(baseline.add_suffix("_baseline"))
        after, before = both["run_out"].fillna(horizon + 1), both["run_out_baseline"].fillna(horizon + 1)
        rows.append(pd.DataFrame({
            "step": run.step.name, "label": run.step.label, "setting": run.step.setting, "direction": run.direction,
            "value": float(run.value), "library_id": both.index,
            "run_out_year": both["run_out"].map(_label, na_action="ignore"),
            "run_out_year_baseline": both["run_out_baseline"].map(_label, na_action="ignore"),
            "run_out_change_years": (after - before).to_numpy(),
            "beyond_horizon": (both["run_out"].isna() != both["run_out_baseline"].isna()).to_numpy(),
            "horizon_free_reserves": both["horizon_free_reserves"].to_numpy(),
            "horizon_free_reserves_baseline": both["horizon_free_reserves_baseline"].to_numpy(),
            "horizon_change": (both["horizon_free_reserves"] - both["horizon_free_reserves_baseline"]).to_numpy(),
        }))
    if not rows:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    return pd.concat(rows, ignore_index=True)[SENSITIVITY_COLUMNS].astype({"run_out_change_years": float})


def portfolio_sensitivity(baseline: pd.DataFrame, baseline_cost: float,
                          steps: list[tuple[StepRun, pd.DataFrame, float]]) -> pd.DataFrame:
    """One row per step and side for the cabinet report: libraries whose free reserves run out by
    the horizon and the council's cost over the comparison years, beside the baseline's."""
    running_out = int(baseline["run_out"].notna().sum())
    rows = [{"step": run.step.name, "label": run.step.label, "setting": run.step.setting, "direction": run.direction,
             "value": float(run.value), "libraries_running_out": int(result["run_out"].notna().sum()),
             "libraries_running_out_baseline": running_out, "council_cost": cost, "council_cost_baseline": baseline_cost}
            for run, result, cost in steps]
    table = pd.DataFrame(rows, columns=PORTFOLIO_SENSITIVITY_COLUMNS)
    table["libraries_running_out_change"] = table["libraries_running_out"] - table["libraries_running_out_baseline"]
    table["council_cost_change"] = table["council_cost"] - table["council_cost_baseline"]
    return table
