"""The forecasting stage (cml/forecasting.py) on known answers: real statsmodels fits, no mocks.

A synthetic panel plants a growth rate and the pooled fit must find it; degenerate panels must
take the documented fallback and say why; the precision weighting and the cost drift rule are
worked by hand. A statsmodels warning is never silent: it is recorded in ``Fit.record`` and none
escapes ``fit_pooled`` (each fit here runs under ``warnings.simplefilter("error")``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cml.forecasting import COSTS, DRIFT_Z, SELF_GENERATED, Fit, cost_drift, design, fit_pooled, weighed_against

ABNORMAL = (2020, 2021)
ASSUMED = 0.01  # the fallback growth, as growth.income
FALLBACK = "none: assumptions.toml growth"


def planted_panel(libraries: int = 30, years: range = range(2016, 2024), slope: float = 0.03, noise_sd: float = 0.05,
                  ramp: float = -0.3, seed: int = 1, constant: float | None = None) -> pd.DataFrame:
    """``library_id, year, amount, age`` with log income = level_i + slope * (year - 2016)
    + ramp / age - 1.0 in 2020/21 - 0.5 in 2021/22 + N(0, noise_sd): the model's own form. Transfers
    are staggered over 2012/13 - 2014/15 (every third library alike) so the ramp-up and the trend
    can be told apart. ``constant`` replaces every log amount with that one value."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(libraries):
        level = np.log(20_000) + rng.normal(0, 0.5)
        first = 2014 - i % 3
        for year in years:
            age = year - first
            log_amount = (level + slope * (year - 2016) + ramp / age + (-1.0 if year == 2020 else 0.0)
                          + (-0.5 if year == 2021 else 0.0) + rng.normal(0, noise_sd))
            rows.append((f"lib{i:02d}", year, float(np.exp(log_amount if constant is None else constant)), age))
    return pd.DataFrame(rows, columns=["library_id", "year", "amount", "age"])


def strict_fit(panel: pd.DataFrame, target: str = SELF_GENERATED, deflator: float = 0.0) -> Fit:
    """``fit_pooled`` with every warning an error outside its own catch: none may escape.
    ``deflator``: a constant cost inflation the panel is deflated by before the fit."""
    libraries = pd.Index(sorted(panel["library_id"].unique()), name="library_id")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fit_pooled(panel, libraries, target, ABNORMAL, lambda years: np.log1p(deflator) * years, ASSUMED)


# ---------------------------------------------------------------------------------------------
# A planted growth rate is recovered


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_pooled_fit_recovers_a_planted_growth_rate(seed):
    """30 libraries x 8 years (2016/17 - 2023/24), growth 0.03 a year, noise sd 0.05, closures of
    -1.0 and -0.5 in 2020/21 and 2021/22, ramp-up -0.3 / age: the fixed slope is 0.03 +- 0.01
    (its standard error is about 0.0023, so that is over 4 of them), the model with a random
    slope converged with no fallback, and each library's growth is near the common one (all
    were planted alike). The residual sd is the planted 0.05 +- 0.01."""
    fit = strict_fit(planted_panel(seed=seed))
    record = fit.record
    assert record["model"] == "MixedLM, random intercept and slope" and fit.model == record["model"]
    assert record["converged"] is True and record["fallback"] == ""
    assert record["formula"] == "log_amount ~ t + abnormal_2020 + abnormal_2021 + ramp"
    assert record["fixed_slope"] == pytest.approx(0.03, abs=0.01)
    assert 0 < record["fixed_slope_se"] < 0.005
    assert fit.growth["growth"].to_numpy() == pytest.approx(0.03, abs=0.01)
    assert (fit.growth["points"] == 8).all() and len(fit.growth) == 30
    assert fit.residual_sd == pytest.approx(0.05, abs=0.01)


def test_a_cost_panel_is_deflated_before_the_fit():
    """Costs growing at exactly growth.costs (0.03) fitted with deflator 0.03 leave a slope of
    nil +- 0.01: the drift beyond the assumption. With no deflator the same panel gives 0.03."""
    panel = planted_panel(seed=4)
    assert strict_fit(panel, COSTS, deflator=0.03).record["fixed_slope"] == pytest.approx(0.0, abs=0.01)
    assert strict_fit(panel, COSTS, deflator=0.0).record["fixed_slope"] == pytest.approx(0.03, abs=0.01)


def test_a_one_off_price_jump_is_a_step_not_a_drift():
    """Costs flat in constant prices but for a jump of 30% (log 0.3) in 2022/23 that stays (an
    energy crisis): fitted with a step from 2022/23 the drift is nil +- 0.01; without the step the
    jump is read as a trend of more than 2% a year."""
    panel = planted_panel(seed=5, slope=0.0, ramp=0.0)
    panel.loc[panel["year"] >= 2022, "amount"] *= np.exp(0.3)
    libraries = pd.Index(sorted(panel["library_id"].unique()), name="library_id")
    stepped = fit_pooled(panel, libraries, COSTS, ABNORMAL, None, 0.0, step_years=(2022,), ramp=False)
    assert "step_2022" in stepped.record["formula"] and "ramp" not in stepped.record["formula"]
    assert stepped.record["fixed_slope"] == pytest.approx(0.0, abs=0.01)
    unstepped = fit_pooled(panel, libraries, COSTS, ABNORMAL, None, 0.0, ramp=False)
    assert unstepped.record["fixed_slope"] > 0.02


def test_every_warning_statsmodels_gives_is_recorded_not_raised():
    """The same model fitted directly with statsmodels (same frame, formula, REML and optimisers)
    gives warnings on this panel (every library was planted with the same slope, so the random
    slope's variance is at its boundary of nil); ``fit_pooled`` raised none of them under
    "error" (:func:`strict_fit`) and recorded every one, word for word."""
    import statsmodels.formula.api as smf

    panel = planted_panel(seed=1)
    fit = strict_fit(panel)
    frame, formula = design(panel, ABNORMAL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smf.mixedlm(formula, frame, groups=frame["library_id"], re_formula="~t").fit(reml=True, method=["powell", "lbfgs"])
    direct = sorted({str(w.message).strip() for w in caught})
    assert direct, "this panel should make statsmodels warn (random slope variance on its boundary)"
    assert fit.record["warnings"] == direct


# ---------------------------------------------------------------------------------------------
# Degenerate panels take the documented fallback and say so


@pytest.mark.parametrize("panel, reason", [
    (planted_panel(libraries=2), "too little history (16 library-years)"),
    (planted_panel(libraries=3, years=range(2016, 2019)), "too little history (9 library-years)"),
], ids=["two_libraries", "nine_rows"])
def test_too_little_history_keeps_the_assumed_growth(panel, reason):
    """Fewer than 3 libraries or 10 library-years: no fit is tried; every library keeps
    log(1 + growth.income) with no uncertainty, and the record says why."""
    fit = strict_fit(panel)
    assert fit.record["model"] == FALLBACK and fit.record["converged"] is False
    assert reason in fit.record["fallback"]
    assert fit.growth["growth"].to_numpy() == pytest.approx(np.log1p(ASSUMED))
    assert (fit.growth["growth_sd"] == 0).all()
    assert fit.record["fixed_slope"] == pytest.approx(np.log1p(ASSUMED)) and fit.record["fixed_slope_se"] == 0
    assert fit.residual_sd == 0 and fit.persistence == 0 and fit.common_share == 0


def test_a_singular_panel_tries_both_models_then_keeps_the_assumed_growth():
    """One year per library (all 2016/17): the year has no variance within a library, so both
    MixedLMs fail (singular matrix) and the fallback names each failure in turn."""
    panel = planted_panel().groupby("library_id").head(1).reset_index(drop=True)
    fit = strict_fit(panel)
    assert fit.record["model"] == FALLBACK
    tried = fit.record["fallback"].split("; ")
    assert [t.split(":")[0] for t in tried] == ["MixedLM, random intercept and slope", "MixedLM, random intercept"]
    assert all("Singular matrix" in t for t in tried)
    assert fit.growth["growth"].to_numpy() == pytest.approx(np.log1p(ASSUMED))


def test_a_constant_panel_falls_back_rather_than_keeping_a_nan_standard_error():
    """Every library-year the same £5,000 (log amount constant): nothing to fit. The documented
    behaviour is a fallback that says why, never a NaN slope uncertainty and a stray warning."""
    fit = strict_fit(planted_panel(constant=np.log(5_000.0)))
    assert fit.record["fallback"]
    assert np.isfinite(fit.growth["growth_sd"]).all()


# ---------------------------------------------------------------------------------------------
# Precision weighting against growth.income


def one_library_fit(growth: list[float], growth_sd: list[float]) -> Fit:
    frame = pd.DataFrame({"growth": growth, "growth_sd": growth_sd, "points": 8}, index=[f"l{i}" for i in range(len(growth))])
    return Fit("m", frame, 0.1, 0.0, 0.0, {"model": "m"})


def test_weighed_against_by_hand():
    """Prior log(1.01) = 0.00995. Library l0: fit 0.05, sd 0.01, prior sd 0.01 -> weight
    0.0001 / (0.0001 + 0.0001) = 0.5, growth 0.00995 + 0.5 x (0.05 - 0.00995) = 0.029975, sd
    sqrt(0.5 x 0.0001) = 0.007071. Library l1: sd 0.02 -> weight 0.0001 / 0.0005 = 0.2, growth
    0.00995 + 0.2 x (-0.01 - 0.00995) = 0.00596, sd sqrt(0.2 x 0.0004) = 0.008944. Library l2: sd
    nil (nothing uncertain) -> weight 1, the fit stands."""
    weighed = weighed_against(one_library_fit([0.05, -0.01, 0.02], [0.01, 0.02, 0.0]), 0.01, 0.01)
    prior = np.log1p(0.01)
    frame = weighed.growth
    assert frame["weight"].tolist() == pytest.approx([0.5, 0.2, 1.0])
    assert frame["growth"].tolist() == pytest.approx([prior + 0.5 * (0.05 - prior), prior + 0.2 * (-0.01 - prior), 0.02])
    assert frame["growth"].iloc[0] == pytest.approx(0.029975, abs=1e-6)
    assert frame["growth_sd"].tolist() == pytest.approx([np.sqrt(0.5e-4), np.sqrt(0.2 * 4e-4), 0.0])
    assert frame["fitted_growth"].tolist() == [0.05, -0.01, 0.02]
    assert weighed.record["mean_weight"] == pytest.approx((0.5 + 0.2 + 1.0) / 3)
    assert weighed.record["assumed_growth"] == pytest.approx(prior)


def test_a_prior_sd_of_nil_keeps_the_assumption_alone():
    """prior sd 0: weight 0 on every fit (even one with no uncertainty), growth log(1.01), sd 0."""
    weighed = weighed_against(one_library_fit([0.05, -0.01, 0.02], [0.01, 0.02, 0.0]), 0.01, 0.0)
    assert weighed.growth["weight"].tolist() == [0.0, 0.0, 0.0]
    assert weighed.growth["growth"].to_numpy() == pytest.approx(np.log1p(0.01))
    assert weighed.growth["growth_sd"].tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------------------------
# The cost drift: only where it is clear


def cost_fit(slope: float, se: float, converged: bool = True) -> Fit:
    frame = pd.DataFrame({"growth": [slope + 0.004, slope - 0.004], "growth_sd": [0.006, 0.006], "points": 8},
                         index=["a", "b"])
    return Fit("m", frame, 0.05, 0.0, 0.0, {"model": "m", "converged": converged, "fixed_slope": slope,
                                            "fixed_slope_se": se})


@pytest.mark.parametrize("slope, se, used", [
    (0.010, 0.006, False),   # z = 1.67 < 2: not used
    (-0.010, 0.006, False),  # nor downwards
    (0.010, 0.004, True),    # z = 2.5: used
    (-0.010, 0.004, True),   # z = -2.5: used, downwards
    (0.010, 0.005, True),    # z = 2.0 exactly: "at least two standard errors"
    (0.010, 0.0, False),     # no standard error: no evidence
])
def test_cost_drift_is_used_only_beyond_two_standard_errors(slope, se, used):
    """A used drift is the pooled (fixed) slope for every library, with its spread kept; an
    unused one is nil with no spread, and the assumption growth.costs stands alone."""
    assert DRIFT_Z == 2.0
    drifted = cost_drift(cost_fit(slope, se))
    assert drifted.record["drift_used"] is used
    assert drifted.record["drift"] == (slope if used else 0.0)
    assert drifted.growth["growth"].tolist() == ([slope, slope] if used else [0.0, 0.0])
    assert drifted.growth["growth_sd"].tolist() == ([0.006, 0.006] if used else [0.0, 0.0])


def test_a_fallback_cost_fit_has_no_drift():
    """A model that did not converge gives no drift however large its slope."""
    assert cost_drift(cost_fit(0.05, 0.001, converged=False)).record["drift_used"] is False
