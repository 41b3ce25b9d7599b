"""The fitted models of income and costs: the forecasting stage, computed once per cut-off.

A library has seven to nine years of accounts, two of them the Covid closures, and its first
years are a ramp-up after the transfer. Too few points to fit one library alone (ETS on eight
points pins its parameters at their bounds: ``../shared/TECH-NOTES.md``), so each model is
**pooled**: one statsmodels ``MixedLM`` across all libraries on the log of the yearly total,

    log(amount) ~ centred year + one dummy per abnormal year + ramp-up (1 / years since transfer)
                  + a random intercept and a random slope per library,

so every library's growth is its own evidence shrunk towards the others'. Eight points, two of
them closures and two a ramp-up, measure a growth rate only roughly (at the 2019/20 cut-off the
ramp-up and the trend are hard to tell apart), so the fitted growth is then weighed against the
assumption ``growth.income`` by precision: weight ``prior_sd^2 / (prior_sd^2 + sd^2)`` on the
fit, where ``sd`` is the library's slope uncertainty and ``prior_sd`` is
``forecast.growth_prior_sd``, how far we would believe growth could differ from the assumption
before seeing the accounts. Where the model with a
random slope does not converge, the random intercept alone is fitted (every library on the
common slope); where that fails too, the forecast keeps the growth rates of ``assumptions.toml``.
Which model was used, whether it converged, every warning statsmodels gave and why a fallback was
taken are recorded (:attr:`Fit.record`) and reported in ``run.json`` and ``fits.csv``: a
convergence warning is never silent.

Two models are fitted:

* ``self_generated`` income (the ``self_generated`` group of ``lines.csv``): the fitted slope is
  each library's growth in cash terms, used by the ``fitted`` forecast method;
* ``costs`` (the ``trend`` expenditure lines), deflated first by the cost prices of
  ``growth.costs`` and ``growth.costs_by_year`` (a dated rate where one is given): the fitted slope
  is a **drift** beyond the cost assumption (no ramp-up term; a step in each of
  ``forecast.cost_step_years`` takes a one-off jump in prices, such as the 2022/23 energy crisis,
  out of it), applied only where the evidence is clear (its
  z-statistic at least :data:`DRIFT_Z`); otherwise the assumption stands alone.

Each fit also gives what the simulation draws from (:mod:`cml.simulation`): the residual spread,
its year-to-year persistence, the share of it common to all libraries in a year, and each
library's slope uncertainty (fixed-effect standard error and the random slope's own variance).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

SELF_GENERATED = "self_generated"
COSTS = "costs"
DRIFT_Z = 2.0  # a cost drift is used only when it is at least two standard errors from nil
MIN_POINTS = 3  # a library with fewer normal full years than this adds to the pool but is not told apart
PERSISTENCE_LIMITS = (0.0, 0.9)  # AR(1) of residuals: negative estimates on 8 points are noise, not mean reversion


@dataclass(frozen=True)
class Fit:
    """One pooled model: per-library growth and the spreads the simulation draws from.

    ``growth`` is indexed by library: ``growth`` (annual log growth used in the forecast),
    ``growth_sd`` (its standard deviation: parameter uncertainty), ``points`` (years fitted).
    """

    model: str  # what was fitted, in words
    growth: pd.DataFrame
    residual_sd: float  # of the log amount around the library's fitted line
    persistence: float  # lag-1 autocorrelation of the residuals, within library
    common_share: float  # share of residual variance common to all libraries in a year (estimated)
    record: dict  # model, converged, warnings, fallback: for run.json and fits.csv


@dataclass(frozen=True)
class Fits:
    """Both models for one cut-off of the accounts, and the spread of the lines too lumpy to model."""

    self_generated: Fit
    costs: Fit
    lumpy: pd.DataFrame  # library_id, line, sd (:func:`lumpy_spread`)

    def records(self) -> list[dict]:
        return [self.self_generated.record, self.costs.record]


def yearly_panel(accounts: pd.DataFrame, lines: pd.DataFrame, last_actual: pd.Series, first_year: pd.Series,
                 target: str) -> pd.DataFrame:
    """``library_id, year, amount, age``: each library's yearly total of the ``target`` lines in its
    full years up to its last actual year (the transfer part-year and nil years left out)."""
    meta = lines.set_index("line")
    if target == SELF_GENERATED:
        chosen = meta.index[meta["group"] == SELF_GENERATED]
    else:
        chosen = meta.index[(meta["side"] == "expenditure") & (meta["forecast"] == "trend")]
    rows = accounts[accounts["line"].isin(chosen) & (accounts["year"] <= accounts["library_id"].map(last_actual))]
    panel = rows.groupby(["library_id", "year"], as_index=False)["amount"].sum()
    panel["age"] = panel["year"] - panel["library_id"].map(first_year)
    return panel[(panel["age"] >= 1) & (panel["amount"] > 0)].reset_index(drop=True)


LogPrices = Callable[[np.ndarray], np.ndarray]  # each year's log price level (any base: differences count)


def design(panel: pd.DataFrame, abnormal_years: tuple[int, ...], log_prices: LogPrices | None = None,
           step_years: tuple[int, ...] = (), ramp: bool = True) -> tuple[pd.DataFrame, str]:
    """The regression frame and formula: log amount (less ``log_prices`` of its year, if given:
    costs in constant prices), centred year, a dummy per abnormal year present, a step from each
    of ``step_years`` on (a price shock that raised the level once, such as the 2022/23 energy
    crisis: without it the slope reads the jump as a trend), and, if ``ramp``, the ramp-up term
    (income builds up after the transfer; a building's costs are there from the first day, and a
    ramp term beside the year only blurs the cost model's slope)."""
    frame = panel.copy()
    frame["log_amount"] = np.log(frame["amount"])
    if log_prices is not None:
        frame["log_amount"] -= log_prices(frame["year"].to_numpy())
    frame["t"] = frame["year"] - frame["year"].mean()
    terms = ["t"]
    for year in abnormal_years:
        if (frame["year"] == year).any():
            frame[f"abnormal_{year}"] = (frame["year"] == year).astype(float)
            terms.append(f"abnormal_{year}")
    for year in step_years:
        if (frame["year"] >= year).any() and (frame["year"] < year).any():
            frame[f"step_{year}"] = (frame["year"] >= year).astype(float)
            terms.append(f"step_{year}")
    if ramp and frame["age"].nunique() > 1:
        frame["ramp"] = 1.0 / frame["age"]
        terms.append("ramp")
    return frame, "log_amount ~ " + " + ".join(terms)


def _mixedlm(frame: pd.DataFrame, formula: str, random_slope: bool):
    """Fit one MixedLM, returning (result or None, warning messages, error text)."""
    import statsmodels.formula.api as smf

    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = smf.mixedlm(formula, frame, groups=frame["library_id"], re_formula="~t" if random_slope else "1")
            result = model.fit(reml=True, method=["powell", "lbfgs"])
            standard_errors = np.asarray(result.bse_fe)  # computed lazily: its warnings belong here too
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as err:
            return None, [str(w.message) for w in caught], f"{type(err).__name__}: {err}"
    messages = sorted({str(w.message).strip() for w in caught})
    if not result.converged:
        return None, messages, "did not converge"
    if not (np.all(np.isfinite(result.fe_params)) and np.isfinite(result.scale) and np.all(np.isfinite(standard_errors))):
        return None, messages, "gave non-finite estimates or standard errors"
    return result, messages, ""


def _slope_spread(result, libraries: pd.Index, random_slope: bool) -> tuple[pd.Series, pd.Series]:
    """Each library's slope (fixed + its random slope) and that slope's standard deviation."""
    fixed, fixed_se = float(result.fe_params["t"]), float(result.bse_fe["t"])
    own = pd.Series(0.0, index=libraries)
    own_var = pd.Series(0.0, index=libraries)
    if random_slope:
        for library, effects in result.random_effects.items():
            own[library] = float(effects.get("t", 0.0))
            cov = result.random_effects_cov[library]
            own_var[library] = float(cov.loc["t", "t"]) if "t" in cov.index else 0.0
    return fixed + own, np.sqrt(fixed_se ** 2 + own_var.clip(lower=0.0))


def residual_structure(frame: pd.DataFrame, residuals: pd.Series) -> tuple[float, float, float]:
    """Residual sd, within-library lag-1 autocorrelation (clipped to :data:`PERSISTENCE_LIMITS`)
    and the share of residual variance common to a year, from the year means across libraries
    less what independent noise alone would give them (never below nil)."""
    res = frame.assign(res=residuals.to_numpy())
    sd = float(res["res"].std(ddof=1)) if len(res) > 1 else 0.0
    res = res.sort_values(["library_id", "year"])
    lagged = res.groupby("library_id")["res"].shift()
    pairs = res.assign(lag=lagged).dropna(subset=["lag"])
    persistence = float(pairs["res"].corr(pairs["lag"])) if len(pairs) > 2 else 0.0
    persistence = float(np.clip(np.nan_to_num(persistence), *PERSISTENCE_LIMITS))
    by_year = res.groupby("year")["res"].agg(["mean", "size"])
    if sd == 0 or len(by_year) < 3:
        return sd, persistence, 0.0
    common = float(by_year["mean"].var(ddof=1) - (sd ** 2 / by_year["size"]).mean())
    return sd, persistence, float(np.clip(common / sd ** 2, 0.0, 1.0))


def fit_pooled(panel: pd.DataFrame, libraries: pd.Index, target: str, abnormal_years: tuple[int, ...],
               log_prices: LogPrices | None, fallback_growth: float, step_years: tuple[int, ...] = (),
               ramp: bool = True) -> Fit:
    """The pooled fit for one target, with its documented fallbacks (see the module docstring)."""
    record = {"model_of": target, "libraries": int(panel["library_id"].nunique()), "observations": int(len(panel))}
    tried: list[str] = []
    frame, formula = design(panel, abnormal_years, log_prices, step_years, ramp) if len(panel) else (panel, "")
    for random_slope, name in ((True, "MixedLM, random intercept and slope"), (False, "MixedLM, random intercept")):
        if len(panel) < 10 or panel["library_id"].nunique() < 3:
            tried.append(f"{name}: too little history ({len(panel)} library-years)")
            break
        result, messages, error = _mixedlm(frame, formula, random_slope)
        if result is None:
            tried.append(f"{name}: {error}" + (f" ({'; '.join(messages)})" if messages else ""))
            continue
        growth, growth_sd = _slope_spread(result, libraries, random_slope)
        counts = panel.groupby("library_id").size().reindex(libraries, fill_value=0)
        sd, persistence, common = residual_structure(frame, result.resid)
        record |= {"model": name, "formula": formula, "converged": True, "warnings": messages,
                   "fallback": "; ".join(tried), "fixed_slope": float(result.fe_params["t"]),
                   "fixed_slope_se": float(result.bse_fe["t"]), "residual_sd": sd, "persistence": persistence,
                   "common_share": common}
        return Fit(name, pd.DataFrame({"growth": growth, "growth_sd": growth_sd, "points": counts}), sd, persistence,
                   common, record)
    record |= {"model": "none: assumptions.toml growth", "formula": formula, "converged": False, "warnings": [],
               "fallback": "; ".join(tried), "fixed_slope": float(np.log1p(fallback_growth)), "fixed_slope_se": 0.0,
               "residual_sd": 0.0, "persistence": 0.0, "common_share": 0.0}
    flat = pd.DataFrame({"growth": np.log1p(fallback_growth), "growth_sd": 0.0,
                         "points": panel.groupby("library_id").size().reindex(libraries, fill_value=0)}, index=libraries)
    return Fit(record["model"], flat, 0.0, 0.0, 0.0, record)


def cost_drift(fit: Fit) -> Fit:
    """The cost model's slope as a drift beyond ``growth.costs``: the pooled (fixed) drift where
    it is at least :data:`DRIFT_Z` standard errors from nil, else none. A per-library cost slope
    from eight noisy years is not evidence enough to forecast one library's costs apart."""
    slope, se = fit.record["fixed_slope"], fit.record["fixed_slope_se"]
    used = bool(fit.record["converged"]) and se > 0 and abs(slope) >= DRIFT_Z * se
    drift = slope if used else 0.0
    growth = fit.growth.assign(growth=drift, growth_sd=fit.growth["growth_sd"] if used else 0.0)
    record = fit.record | {"drift_used": used, "drift": drift,
                           "drift_note": (f"drift of {slope:+.2%} a year beyond cost inflation, z = {slope / se:.1f}"
                                          if se > 0 else "no drift estimated")}
    return Fit(fit.model, growth, fit.residual_sd, fit.persistence, fit.common_share, record)


def weighed_against(fit: Fit, assumed: float, prior_sd: float) -> Fit:
    """Each library's fitted growth weighed against the assumption by precision (module docstring).

    ``weight`` (on the fit) and ``fitted_growth`` (before weighing) are kept for the method note;
    the uncertainty that remains is the combined one.

    >>> fit = Fit("m", pd.DataFrame({"growth": [0.05], "growth_sd": [0.01], "points": [8]}), 0.1, 0.0, 0.0, {})
    >>> weighed_against(fit, 0.0, 0.01).growth[["growth", "weight"]].round(4).values.tolist()
    [[0.025, 0.5]]
    """
    frame = fit.growth.copy()
    variance = frame["growth_sd"] ** 2
    weight = prior_sd ** 2 / (prior_sd ** 2 + variance) if prior_sd > 0 else variance * 0.0
    weight = weight.where(variance > 0, 1.0 if prior_sd > 0 else 0.0)
    prior = np.log1p(assumed)
    frame["fitted_growth"] = frame["growth"]
    frame["weight"] = weight
    frame["growth"] = prior + weight * (frame["growth"] - prior)
    frame["growth_sd"] = np.sqrt(weight * variance)
    record = fit.record | {"assumed_growth": prior, "prior_sd": prior_sd, "mean_weight": float(weight.mean())}
    return Fit(fit.model, frame, fit.residual_sd, fit.persistence, fit.common_share, record)


def fit_models(accounts: pd.DataFrame, lines: pd.DataFrame, last_actual: pd.Series, first_year: pd.Series,
               abnormal_years: tuple[int, ...], income_growth: float, cost_prices: LogPrices, prior_sd: float,
               cost_step_years: tuple[int, ...] = ()) -> Fits:
    """Both pooled models on the accounts up to each library's ``last_actual`` year; costs in the
    constant prices of ``cost_prices`` (``growth.costs`` and ``growth.costs_by_year``), with a
    step from each of ``cost_step_years`` (``forecast.cost_step_years``)."""
    libraries = pd.Index(sorted(last_actual.index), name="library_id")
    income = weighed_against(fit_pooled(yearly_panel(accounts, lines, last_actual, first_year, SELF_GENERATED),
                                        libraries, SELF_GENERATED, abnormal_years, None, income_growth),
                             income_growth, prior_sd)
    costs = fit_pooled(yearly_panel(accounts, lines, last_actual, first_year, COSTS), libraries, COSTS,
                       abnormal_years, cost_prices, 0.0, cost_step_years, ramp=False)
    return Fits(income, cost_drift(costs), lumpy_spread(accounts, lines, last_actual, first_year, abnormal_years))


def lumpy_spread(accounts: pd.DataFrame, lines: pd.DataFrame, last_actual: pd.Series, first_year: pd.Series,
                 abnormal_years: tuple[int, ...]) -> pd.DataFrame:
    """``library_id, line, sd``: for each line that comes and goes (a trend line averaged over
    several base years in lines.csv: grants from other funders, fabric repairs), the standard
    deviation of the library's yearly amounts over its normal full years up to the cut-off, a
    year it did not report counting as nil. These lines are too lumpy for a growth model; their
    own spread is what the simulation varies them by. Nil with fewer than two years.

    >>> accounts = pd.DataFrame({"library_id": "a", "year": [2016, 2017, 2018], "line": "g",
    ...                          "amount": [100.0, 300.0, 200.0]})
    >>> lines = pd.DataFrame({"line": ["g"], "forecast": ["trend"], "base_years": ["3"]})
    >>> lumpy_spread(accounts, lines, pd.Series({"a": 2018}), pd.Series({"a": 2015}), ()).to_dict("records")
    [{'library_id': 'a', 'line': 'g', 'sd': 100.0}]
    """
    meta = lines.set_index("line")
    counts = pd.to_numeric(meta["base_years"], errors="coerce") if "base_years" in meta else pd.Series(dtype=float)
    lumpy = meta.index[meta["forecast"].isin(["trend", "fitted"]) & (counts.reindex(meta.index) > 1)]
    years = pd.DataFrame([(library, year) for library, last in last_actual.items()
                          for year in range(int(first_year[library]) + 1, int(last) + 1) if year not in abnormal_years],
                         columns=["library_id", "year"])
    grid = years.merge(pd.DataFrame({"line": lumpy}), how="cross")
    amounts = accounts[accounts["line"].isin(lumpy)].groupby(["library_id", "year", "line"], as_index=False)["amount"].sum()
    full = grid.merge(amounts, on=["library_id", "year", "line"], how="left").fillna({"amount": 0.0})
    spread = full.groupby(["library_id", "line"])["amount"].std(ddof=1).fillna(0.0).rename("sd").reset_index()
    return spread[["library_id", "line", "sd"]]
