"""Rendering: one PDF briefing per library and the portfolio report, from a ``Forecast``.

Last stage of the pipeline (inputs -> schedule -> projection -> scenarios -> **render**).

How a pack is made, and why:

* The parent process turns the forecast into one plain-data context per document
  (:func:`briefing_context`, :func:`portfolio_context`): dicts, lists, strings and numbers, no
  live frames. Contexts pickle cheaply, and a template can only show what the context holds.
* Worker processes (``forkserver``: a clean process, never a fork of a parent that has
  imported WeasyPrint, which has crashed workers) draw the charts, fill the jinja2 template and
  write the PDF. One document does not get faster with more cores; many documents do. Each
  worker keeps one ``FontConfiguration``, image cache, parsed stylesheet and URL fetcher for
  all its documents (:class:`_PdfWriter`).
* WeasyPrint is imported only in the process that writes PDFs, so ``import cml.render`` stays
  cheap for commands that never draw one.

Safety: templates autoescape and use ``StrictUndefined``; the URL fetcher refuses every
network scheme and every file outside the package's ``templates/`` directory; file names are
slugs that cannot leave ``out_dir/briefings``. Output is PDF/UA-1 (tagged, with a language
and a title) so screen readers can follow it.

``templates/`` sits at the top of the repository, beside ``cml/``, as the project layout
requires. It is found relative to this file (``cml/render.py`` -> ``../templates``), which holds
for the editable install the project uses; a wheel would need the templates shipped as package
data.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import click
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cml.backtest import BACKTEST_DRAWS, describe_cutoffs
from cml.fy import STANDARD_YEAR_END, fy_label, parse_fy, year_ranges
from cml.inputs import CONTINGENCY_GRANT, RECEIPTS_AND_PAYMENTS
from cml.peers import CHANGE_YEARS, FROM_NIL_OR_BELOW, QUARTILES
from cml.projection import Forecast, comparison_years, option_comparison
from cml.scenarios import BASELINE, SETTING_WORDS, WHAT_IF

if TYPE_CHECKING:
    import pandas as pd
    from weasyprint.document import Document
    from weasyprint.urls import URLFetcher

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STYLESHEET = "base.css"
PDF_VARIANT = "pdf/ua-1"
WORKER_RECYCLE_AFTER = 200  # documents; a past WeasyPrint release leaked memory over thousands
WATCH_PARENT_SECONDS = 0.5  # how often a worker checks that the run it works for is still alive
ORPHANED_EXIT = 75  # a worker's exit code when the run died under it
PDF_SCOPES = {"col": "/Column", "colgroup": "/Column", "row": "/Row", "rowgroup": "/Row", "both": "/Both"}
FOOTER_CHECKSUM_CHARACTERS = 12  # enough to tell two runs' inputs apart; run.json keeps all 64
PORTFOLIO_TOLERANCE_POUNDS = 0.01  # sums of the same floats in another order differ by far less
RAG_ORDER = ("Red", "Amber", "Green")
PRIORITY_YEARS = 3  # the report asks officers to see first the libraries that run out within this many forecast years
PORTFOLIO_MONEY = ("council_grant", "income", "expenditure", "deficit", "closing_reserves", "free_reserves")
COUNCIL_COST = "council_cost_"  # prefix of the portfolio's council spending columns, one per component
RAG_SYMBOLS = {"Red": "\u2716", "Amber": "\u25b2", "Green": "\u2714"}  # heavy x, triangle, tick
INCOME_GROUP_LABELS = {
    "council_grant": "Council grant",
    "self_generated": "Self-generated income",
    "grants": "Other grants",
    "contingency_fund": "Contingency fund support",
}
LEASE_TYPE_LABELS = {
    "full_repairing": "Full repairing: the group looks after the building's fabric (roof, walls, boiler)",
    "internal_repairing": "Internal repairing only: the council keeps the building's structure",
    "other": "Other: neither a full nor an internal repairing lease",
}


class RenderError(Exception):
    """WeasyPrint reported a problem while laying out a document (a bug in a template)."""


class PortfolioMismatch(Exception):
    """The portfolio's figures do not equal the sum of the libraries' figures."""


# ---------------------------------------------------------------------------------------------
# Display formats (jinja filters), rounded half up as UK public bodies round


def _half_up(value: float, places: int = 0) -> Decimal:
    """Round for display only; the figures behind it stay unrounded floats."""
    if value is None or math.isnan(value):
        raise ValueError("a missing figure reached a formatted cell")
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _bracketed(rounded: Decimal, text: str) -> str:
    """Accountants' negatives: in brackets, never with a minus sign."""
    return f"({text})" if rounded < 0 else text


def money(value: float) -> str:
    """Whole pounds with thousands separators, negatives in brackets.

    >>> money(12345.5), money(-2300), money(-0.4), money(2.5)
    ('£12,346', '£(2,300)', '£0', '£3')
    """
    pounds = _half_up(value)
    return "£" + _bracketed(pounds, f"{abs(pounds):,.0f}")


def money_up(value: float) -> str:
    """A sum to raise or save, rounded up to the next pound: a target is a minimum, and £3,701 of
    a £3,701.49 target would fall short. Less than a penny over a pound is the solver's precision,
    not a shortfall.

    >>> money_up(3701.49), money_up(3701.004), money_up(0.02)
    ('£3,702', '£3,701', '£1')
    """
    return money(math.ceil(round(value, 2)))


def months(value: float, unit: bool = False) -> str:
    """Months of cover to one decimal place, with "months" after it when ``unit``.

    "none" when free reserves are below zero: negative months of cover mean nothing to a
    reader, and the free reserves beside them show the shortfall. A dash when there was no
    spending to cover.

    >>> months(4.25), months(4.25, unit=True), months(-1.04, unit=True), months(float("nan"))
    ('4.3', '4.3 months', 'none', '–')
    """
    if value is None or math.isnan(value):
        return "–"
    if value < 0:
        return "none"
    return f"{_half_up(value, 1):.1f}" + (" months" if unit else "")


def pct(fraction: float) -> str:
    """A fraction as a percentage: whole where that is exact to a tenth, else to one decimal place.

    >>> pct(0.125), pct(1), pct(0.015)
    ('12.5%', '100%', '1.5%')
    """
    tenths = _half_up(fraction * 100, 1)
    return f"{tenths.normalize():f}%" if tenths != tenths.to_integral_value() else f"{tenths.to_integral_value()}%"


def years_left(value: float) -> str:
    """Years reserves last, to one decimal place: "not depleting" when infinite (a surplus),
    "none left" at nil (already gone).

    >>> years_left(7.254), years_left(float("inf")), years_left(0.0)
    ('7.3', 'not depleting', 'none left')
    """
    if math.isinf(value):
        return "not depleting"
    return "none left" if value == 0 else f"{_half_up(value, 1):.1f}"


def long_date(day: date) -> str:
    """The date as a council report writes it: 31 March 2024."""
    return f"{day.day} {day:%B %Y}"


def slugify(text: str) -> str:
    """A file name that cannot escape its folder: lower-case letters, digits and hyphens only.

    >>> slugify("../../evil"), slugify("Smith & Sons <Trust>"), slugify("..")
    ('evil', 'smith-sons-trust', 'library')
    """
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return slug or "library"


def readable(name: str) -> str:
    """How a data name (a scenario, an income group, a kind of council spending) reads in prose.

    >>> readable("option_2_with_failures"), readable("fund_payments")
    ('Option 2 with failures', 'Fund payments')
    """
    return name.replace("_", " ").capitalize()


def rag_badge(rag: str) -> str:
    """RAG as symbol and word, so the status never depends on seeing colour."""
    return f"{RAG_SYMBOLS[rag]} {rag}"


# ---------------------------------------------------------------------------------------------
# Contexts: plain data for one document, built in the parent


def rag_rule(forecast: Forecast) -> dict:
    """The months of cover below which a library is Red or Amber, and the look-ahead that stops a
    library running out soon from being Green, as the notes state the rule."""
    return {"red_below_months": forecast.assumptions.red_below_months,
            "amber_below_months": forecast.assumptions.amber_below_months,
            "not_green_within_years": forecast.assumptions.not_green_within_years}


def cost_inflation_words(assumptions, years: list[int]) -> str:
    """The cost inflation of the forecast ``years`` as a reader takes it in: dated rates year by
    year, then the rate that runs on.

    >>> from types import SimpleNamespace
    >>> a = SimpleNamespace(cost_inflation=lambda y: {2024: 0.03, 2025: 0.035}.get(y, 0.025))
    >>> cost_inflation_words(a, [2024, 2025, 2026, 2027])
    '3% in 2024/25, 3.5% in 2025/26, then 2.5% a year'
    >>> cost_inflation_words(SimpleNamespace(cost_inflation=lambda y: 0.02), [2024, 2025])
    '2% a year'
    """
    runs: list[tuple[float, list[int]]] = []
    for year in sorted(years):
        rate = assumptions.cost_inflation(year)
        if runs and runs[-1][0] == rate:
            runs[-1][1].append(year)
        else:
            runs.append((rate, [year]))
    if not runs:
        return ""
    dated = [f"{pct(rate)} in {year_ranges([fy_label(y) for y in run])}" for rate, run in runs[:-1]]
    return ", ".join(dated + [("then " if dated else "") + f"{pct(runs[-1][0])} a year"])


def method_context(forecast: Forecast, library_id: str | None = None) -> dict:
    """How the forecast is made, in the terms a treasurer checks it by: the base years, the
    years treated as abnormal, growth, interest and (for one library) its café cost ratio."""
    a = forecast.assumptions
    base = forecast.base_years
    if library_id is not None:
        base = base[base["library_id"] == library_id]
    base_labels = sorted(set(base["financial_year"]), key=parse_fy)
    own = forecast.fits.set_index("library_id")["income_growth"].get(library_id) if library_id is not None else None
    return {"base_years": a.base_years, "base_labels": year_ranges(base_labels) if base_labels else "",
            "own_income_growth": float(np.expm1(own)) if own is not None else None,
            "abnormal": year_ranges([fy_label(y) for y in a.abnormal_years]) if a.abnormal_years else "",
            "cost_inflation": cost_inflation_words(a, sorted(set(forecast.projection.loc[
                (forecast.projection["actual_or_forecast"] == "forecast")
                & (forecast.projection["scenario"] == BASELINE), "year"]))),
            "income_growth": a.income_growth, "interest_rate": a.interest_rate,
            "gap_years": a.annual_gap_years}


def simulation_context(forecast: Forecast) -> dict:
    """What the method note says about the fitted models and the simulation."""
    a = forecast.assumptions
    records = {r["model_of"]: r for r in forecast.fit_records}
    income, costs = records.get("self_generated", {}), records.get("costs", {})
    return {"draws": a.simulation_draws, "income_model": income.get("model", ""),
            "income_fixed_growth": float(np.expm1(income.get("fixed_slope", 0.0))),
            "income_sd": income.get("residual_sd", 0.0), "prior_sd": a.growth_prior_sd,
            "mean_weight": income.get("mean_weight", 0.0), "income_fallback": income.get("fallback", ""),
            "warnings": sorted({w.rstrip(".") for r in forecast.fit_records for w in r.get("warnings", [])}),
            "cost_drift_used": bool(costs.get("drift_used", False)), "cost_drift_note": costs.get("drift_note", ""),
            "common_share": a.simulation_common_share, "failure_probability": a.simulation_building_failure_probability,
            "failure_median": a.simulation_building_failure_cost_median,
            "failure_p90": a.simulation_building_failure_cost_p90}


def run_context(run_info: dict, library_id: str | None = None) -> dict:
    """The run facts every page footer carries (the inputs checksum shortened to fit); a briefing's
    accounts year, and how old they are, are its own library's (``run_info["library_accounts"]``)."""
    run_info = {**run_info, **(run_info.get("library_accounts", {}).get(library_id, {}) if library_id else {})}
    return {
        "date": long_date(datetime.fromisoformat(run_info["run_at"]).date()),
        "version": run_info["version"],
        "inputs_sha256": run_info["inputs_sha256"][:FOOTER_CHECKSUM_CHARACTERS],
        "illustrative": bool(run_info["illustrative"]),
        "latest_accounts_year": run_info["latest_accounts_year"],
        "accounts_stale": bool(run_info["accounts_stale"]),
        "months_since_accounts": run_info["months_since_accounts"],
        "latest_accounts_year_end": long_date(date.fromisoformat(run_info["latest_accounts_year_end"])),
    }


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts of Python scalars (what pickles cheaply and templates read)."""
    return frame.to_dict("records")


def _scenarios(forecast: Forecast) -> list[str]:
    """Scenario names in the order the forecast lists them (baseline first when present)."""
    names = list(dict.fromkeys(forecast.summary["scenario"]))
    return sorted(names, key=lambda name: name != BASELINE)


def why_sentence(last_grant_year: str, last_actual_year: str, annual_gap: float, gap_years: str | None,
                 runs_out: bool) -> str:
    """The one sentence that says why reserves move, from the grant's end and the yearly gap.

    ``annual_gap`` is spending less the library's own income (contingency fund payments left
    out) averaged over ``gap_years``, the first three forecast years without grant. The
    sentence names those years, so a reader can find them in the table; a library can be in
    surplus then and still run out later, as costs outgrow income.

    >>> why_sentence("2021/22", "2023/24", 2300.4, "2024/25 to 2026/27", True)  # doctest: +NORMALIZE_WHITESPACE
    "The council grant ended in 2021/22; spending is forecast to exceed the library's own income
     by an average of £2,300 a year over 2024/25 to 2026/27."
    >>> why_sentence("2021/22", "2023/24", -150, "2024/25 to 2026/27", True)  # doctest: +NORMALIZE_WHITESPACE
    "The council grant ended in 2021/22; the library's own income is forecast to exceed its spending
     by an average of £150 a year over 2024/25 to 2026/27, but later years fall into deficit."
    >>> why_sentence("2025/26", "2023/24", -150, "2026/27 to 2028/29", False)  # doctest: +NORMALIZE_WHITESPACE
    "The council grant ends in 2025/26; after that, the library's own income is forecast to exceed
     its spending by an average of £150 a year over 2026/27 to 2028/29."
    >>> why_sentence("2034/35", "2023/24", float("nan"), None, False)  # no forecast year without grant
    'The council grant continues to 2034/35, the end of the forecast.'
    """
    if math.isnan(annual_gap):
        return f"The council grant continues to {last_grant_year}, the end of the forecast."
    ended = parse_fy(last_grant_year) <= parse_fy(last_actual_year)
    grant = f"The council grant {'ended' if ended else 'ends'} in {last_grant_year}"
    after = "" if ended else "after that, "
    average = f"by an average of {money(abs(annual_gap))} a year over {gap_years}"
    if annual_gap > 0:
        balance = f"spending is forecast to exceed the library's own income {average}"
    else:
        balance = f"the library's own income is forecast to exceed its spending {average}"
        if runs_out:
            balance += ", but later years fall into deficit"
    return f"{grant}; {after}{balance}."


def _year_rows(projection: pd.DataFrame) -> list[dict]:
    """The year-by-year table: one plain row per financial year."""
    rows = projection.assign(
        actual=projection["actual_or_forecast"] == "actual",
        own_and_other_income=projection["income"] - projection["council_grant"] - projection["fund_support"],
        rag_badge=projection["rag"].map(rag_badge),
    )
    return _records(rows[["year", "financial_year", "actual", "council_grant", "fund_support", "own_and_other_income",
                          "income",
                          "expenditure", "surplus", "closing_reserves", "free_reserves", "reserves_target",
                          "months_of_cover", "rag", "rag_badge"]])


def _income_by_group(lines: pd.DataFrame, years: list[int]) -> dict[str, list[float]]:
    """Income per source group and year, council grant first, every year present (0 if none)."""
    income = lines[lines["side"] == "income"]
    table = income.pivot_table(index="group", columns="year", values="amount", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=years, fill_value=0.0)
    known = [group for group in INCOME_GROUP_LABELS if group in table.index]
    order = known + sorted(set(table.index) - set(known))
    return {INCOME_GROUP_LABELS.get(group, readable(group)): [float(v) for v in table.loc[group]]
            for group in order}


def _lease(library: dict, forecast: Forecast) -> dict:
    """Lease facts at the latest accounts, and what the baseline assumes after them: the years
    the lease is extended (each with fees) and the years it is too short for external funders
    (when part of the library's other grants is assumed lost)."""
    settings = forecast.settings[BASELINE]
    security_years = settings["funders.min_lease_years"]
    remaining = float(library["lease_years_remaining"])
    leases = forecast.leases
    path = leases[(leases["scenario"] == BASELINE) & (leases["library_id"] == library["library_id"])
                  & (leases["year"] > parse_fy(library["last_actual_year"]))].sort_values("year")
    return {
        "type": LEASE_TYPE_LABELS.get(library["lease_type"], library["lease_type"]),
        "start": long_date(library["lease_start"]),
        "end": long_date(library["lease_end"]),
        "as_of": long_date(library["accounts_made_up_to"]),
        "years_remaining": remaining,
        "security_years": security_years,
        "secure": remaining >= security_years,
        "extension_years": settings["lease.extension_years"],
        "threshold_years": settings["lease.threshold_years"],
        "extension_fees": settings["lease.library_fees"],
        "extended_in": path.loc[path["fees"] > 0, "financial_year"].tolist(),
        "short_in": year_ranges(path.loc[path["short_of_security"], "financial_year"].tolist()),
        "grants_lost_share": settings["funders.other_grants_lost_share"],
        "recorded": _records(forecast.lease_extensions[forecast.lease_extensions["library_id"] == library["library_id"]][
            ["financial_year", "years_added"]]),
        "grant_base_labels": year_ranges(sorted(forecast.grant_base_years.loc[
            forecast.grant_base_years["library_id"] == library["library_id"], "financial_year"], key=parse_fy)),
        "grants_factor_short": _factor(path[path["short_of_security"]]),
        "grants_factor_secure": _factor(path[~path["short_of_security"]]),
        "horizon_years_remaining": float(path["lease_years_remaining"].iloc[-1]),
    }


def _factor(path: pd.DataFrame) -> float | None:
    """The multiple of their base that grants from other funders are forecast at in these years
    (one value: it depends only on whether the lease is short), or None when there are no such years."""
    return float(path["other_grants_factor"].iloc[0]) if len(path) else None


def _trustee_rows(trustees: pd.DataFrame, projection: pd.DataFrame) -> list[dict]:
    """The trustees' own projection beside ours for the same years; gap = ours less theirs.

    Like against like: trustees plan without the contingency fund, so in forecast years our income
    and our reserves both leave out every payment from the fund (emergencies included;
    discretionary top-ups are never in the own position; the interest those payments would earn
    stays in, a few pounds), and our spending includes one-off costs, as theirs does. Actual years
    are the accounts as they are.
    """
    forecast_support = projection["fund_support"].where(projection["actual_or_forecast"] == "forecast", 0.0)
    ours = projection.assign(income=projection["income"] - forecast_support,
                             closing_reserves=projection["closing_reserves"] - forecast_support.cumsum())[
        ["year", "income", "expenditure", "closing_reserves", "actual_or_forecast"]]
    joined = trustees.merge(ours, on="year", suffixes=("", "_ours")).sort_values("year")
    rows = []
    for row in _records(joined):
        figures = {
            column: {"theirs": row[column], "ours": row[f"{column}_ours"],
                     "gap": row[f"{column}_ours"] - row[column]}
            for column in ("income", "expenditure", "closing_reserves")
        }
        rows.append({"financial_year": row["financial_year"], "actual": row["actual_or_forecast"] == "actual",
                     **figures})
    return rows


def _fund_grants(forecast: Forecast, last_actual_year: str) -> list[dict]:
    """The contingency fund's one-off grants to every library (``one_off_grants.csv`` rows of the
    contingency grant line), each marked actual or forecast for the briefing's tense."""
    grants = forecast.one_off_grants[forecast.one_off_grants["line"] == CONTINGENCY_GRANT]
    return [{**grant, "actual": grant["year"] <= parse_fy(last_actual_year)}
            for grant in _records(grants[["year", "financial_year", "label", "percent_of_running_costs"]])]


def _own_failures(settings: dict, library_id: str) -> list[dict]:
    """The building failures a scenario gives this library (year and cost), for its briefing."""
    return [{"financial_year": failure["financial_year"], "cost": failure["cost"]}
            for failure in settings["shocks.building_failures"] if failure["library_id"] == library_id]


def _scenario_rows(forecast: Forecast, library_id: str) -> list[dict]:
    """One row per scenario in the forecast: where this library ends up, what the council spends
    on it over the baseline's forecast years (the same years for every scenario, so the rows
    compare), and any building failure the scenario gives it."""
    summaries = forecast.summary[forecast.summary["library_id"] == library_id].set_index("scenario")
    rows = forecast.projection[forecast.projection["library_id"] == library_id]
    at_horizon = rows.sort_values("year").groupby("scenario").tail(1).set_index("scenario")["rag"]
    descriptions = forecast.scenarios.set_index("scenario")["description"]
    table = []
    for name in _scenarios(forecast):
        summary = summaries.loc[name]
        table.append({
            "label": readable(name), "description": descriptions[name],
            "own_failures": _own_failures(forecast.settings[name], library_id),
            "rag": at_horizon[name], "rag_badge": rag_badge(at_horizon[name]),
            "run_out_year": summary["run_out_year"], "horizon_closing_reserves": summary["horizon_closing_reserves"],
            "run_out_year_supported": summary["run_out_year_supported"],
            "horizon_free_reserves": summary["horizon_free_reserves"], "council_cost": summary["council_cost"],
            "claims": _claims_for(forecast, name, library_id),
        })
    return table


def _claims_for(forecast: Forecast, scenario: str, library_id: str) -> dict:
    """This library's contingency fund claims under a scenario: paid, and left unpaid over the caps
    or because the fund was empty, over the baseline's forecast years."""
    claims = forecast.claims[(forecast.claims["scenario"] == scenario) & (forecast.claims["library_id"] == library_id)]
    claims = claims.merge(comparison_years(forecast.projection), on=["library_id", "year"])
    return {"claimed": float(claims["claimed"].sum()), "paid": float(claims["paid"].sum()),
            "over_caps": float(claims["unmet_over_caps"].sum()), "fund_empty": float(claims["unmet_fund_empty"].sum()),
            "kinds": sorted(set(claims.loc[claims["claimed"] > 0, "kind"]))}


def _cafe_ratio(forecast: Forecast, library_id: str) -> float | None:
    """This library's café cost of sales per pound of café sales in its base years (None: no café)."""
    ratios = forecast.line_ratios[(forecast.line_ratios["library_id"] == library_id)
                                  & (forecast.line_ratios["ratio_of"] == "cafe")]
    return float(ratios["ratio"].iloc[0]) if len(ratios) and ratios["ratio"].iloc[0] > 0 else None


def chance(probability: float) -> str:
    """A probability in round words a treasurer reads, with no false precision.

    >>> [chance(p) for p in (0.0, 0.04, 0.12, 0.5, 0.68, 0.96, 1.0)]
    ['under 1 in 20', 'under 1 in 20', 'about 1 in 10', 'about 5 in 10', 'about 7 in 10', 'over 19 in 20', 'over 19 in 20']
    """
    if probability < 0.05:
        return "under 1 in 20"
    if probability > 0.95:
        return "over 19 in 20"
    return f"about {max(1, min(9, int(_half_up(probability * 10))))} in 10"


def risk_context(risk: pd.DataFrame, first_forecast_year: int, within: tuple[int, ...] = (3, 5)) -> dict:
    """The simulation's view of one library (baseline): the chance its free reserves run out within
    3 and 5 years (counting the first forecast year), and the fan's bands for the chart."""
    risk = risk.sort_values("year").set_index("year")
    horizon = int(risk.index.max())
    chances = []
    for years in within:
        by = min(first_forecast_year + years - 1, horizon)
        p = float(risk.loc[by, "probability_run_out"])
        chances.append({"years": years, "by": fy_label(by), "probability": p, "words": chance(p),
                        "last": chance(1.0 - p)})
    return {"chances": chances, "horizon_words": chance(float(risk["probability_run_out"].iloc[-1])),
            "fan": {f"p{p}": risk[f"free_reserves_p{p}"].tolist() for p in (5, 25, 50, 75, 95)}}


def in_ten(share: float) -> str:
    """A confidence as "8 in 10" where it is a whole number of tenths, else as a percentage.

    >>> in_ten(0.8), in_ten(0.95)
    ('8 in 10', '95 in 100')
    """
    tenths = share * 10
    return f"{round(tenths)} in 10" if abs(tenths - round(tenths)) < 1e-9 else f"{round(share * 100)} in 100"


def action_context(forecast: Forecast, library_id: str) -> dict:
    """The page-1 action box: what the library would have to raise or save a year to hold its
    reserves policy (:func:`cml.projection.fundraising_targets`), or how far above it stays."""
    target = forecast.targets[forecast.targets["library_id"] == library_id].iloc[0].to_dict()
    share = target["extra_income_share"]
    return target | {
        "needed": target["extra_income"] > 0, "reachable": not math.isnan(target["extra_income"]),
        "needed_at_confidence": target["extra_income_at_confidence"] > 0,
        "reachable_at_confidence": not math.isnan(target["extra_income_at_confidence"]),
        "below_now": target["free_reserves_now"] < target["reserves_target_now"],
        "share": None if math.isnan(share) else share,
        "confidence_words": in_ten(target["confidence"]),
    }


def signed_money(value: float) -> str:
    """A change in pounds: a plus sign on a rise, brackets on a fall, "no change" under 50p.

    >>> signed_money(2602.4), signed_money(-2457.0), signed_money(0.2)
    ('+£2,602', '£(2,457)', 'no change')
    """
    if abs(value) < 0.5:
        return "no change"
    return ("+" if value > 0 else "") + money(value)


def years_change(change: float, beyond_horizon: bool) -> str:
    """A change in the run-out year in words ("2 years earlier"; "at least 1 year later" where
    one side runs out after the horizon, so the change is known only as a floor).

    >>> years_change(-2, False), years_change(1, True), years_change(0, False)
    ('2 years earlier', 'at least 1 year later', 'no change')
    """
    if change == 0:
        return "no change"
    years = int(abs(change))
    words = f"{years} year{'s' if years != 1 else ''} {'later' if change > 0 else 'earlier'}"
    return f"at least {words}" if beyond_horizon else words


def risk_measure(risk: dict) -> str:
    """How one risk's impact is measured, in words, with the pounds it was scored on.

    >>> risk_measure({"basis": "income_group", "impact": 25.0, "of_label": "self generated", "exposure": 4317.4,
    ...               "impact_pounds": 1079.3})
    '25% of self generated income (£4,317)'
    >>> risk_measure({"basis": "spending", "impact": 2.0, "of_label": "", "exposure": 666.6, "impact_pounds": 1333.2})
    "2 months' spending (£667 a month)"
    """
    basis, impact = risk["basis"], risk["impact"]
    if basis == "income_group":
        return f"{impact:g}% of {risk['of_label']} income ({money(risk['exposure'])})"
    if basis == "line":
        return f"{impact:g}% of {risk['of_label'].lower()} ({money(risk['exposure'])})"
    if basis == "spending":
        return f"{impact:g} month{'s' if impact != 1 else ''}' spending ({money(risk['exposure'])} a month)"
    if basis == "lease_fees":
        return "the fees, as the lease is due to be extended" if risk["exposure"] > 0 else "none: the lease is not yet due"
    return f"a fixed {money(impact)}"


def reserves_context(forecast: Forecast, library_id: str) -> dict:
    """The "what reserves to hold" section: each risk scored, the requirement they add up to, the
    flat policy and the simulated check beside it, and the verdict."""
    risks = forecast.reserves_risks[forecast.reserves_risks["library_id"] == library_id].to_dict("records")
    summary = forecast.reserves_requirement[forecast.reserves_requirement["library_id"] == library_id].iloc[0].to_dict()
    for risk in risks:
        risk["measure"] = risk_measure(risk)
    below_from = summary["below_requirement_from"]
    return summary | {"risks": [r for r in risks if r["amount"] > 0], "not_scored": [r for r in risks if r["amount"] == 0],
                      "below_requirement_from": below_from if isinstance(below_from, str) else None,
                      "covers_shortfall": summary["requirement"] >= summary["shortfall_1_in_10"],
                      "safer_hold": max(summary["requirement"], summary["shortfall_1_in_10"])}


def steps_both_sides(table: pd.DataFrame, swing: str, side: Callable[[dict], dict]) -> list[dict]:
    """One row per sensitivity step: its label and each side (``side`` of the row; None where that
    side was not run), the largest swing in ``swing`` first, as the tornado and its tables read."""
    rows = []
    for _, step in table.groupby("step", sort=False):
        sides = {row["direction"]: side(row) for row in step.to_dict("records")}
        rows.append({"label": step["label"].iloc[0], "lower": sides.get("down"), "higher": sides.get("up"),
                     "swing": float(step[swing].abs().max())})
    return sorted(rows, key=lambda r: -r["swing"])


def sensitivity_context(forecast: Forecast, library_id: str, horizon: str) -> dict | None:
    """The tornado and its table: each step's change in this library's run-out year and horizon
    free reserves on each side, the largest swing first (None when no steps were run)."""
    rows = forecast.sensitivity[forecast.sensitivity["library_id"] == library_id]
    if rows.empty:
        return None
    steps = steps_both_sides(rows, "horizon_change", lambda row: {
        "run_out_year": row["run_out_year"] if isinstance(row["run_out_year"], str) else None,
        "years": years_change(row["run_out_change_years"], bool(row["beyond_horizon"])),
        "change": float(row["horizon_change"]), "reserves": signed_money(row["horizon_change"])})
    first = rows.iloc[0]
    return {"steps": steps, "run_out_year": first["run_out_year_baseline"] if isinstance(first["run_out_year_baseline"], str)
            else None, "horizon_free_reserves": float(first["horizon_free_reserves_baseline"]),
            "chart": {"labels": [s["label"] for s in steps], "horizon": horizon,
                      "lower": [s["lower"]["change"] if s["lower"] else None for s in steps],
                      "higher": [s["higher"]["change"] if s["higher"] else None for s in steps]}}


def _peer_figure(indicator: str, value: float) -> str:
    """One figure of the peers table as the indicator reads (months, a percentage, years); a
    quartile no library is ranked for has none to compare."""
    if math.isnan(value):
        return "none to compare"
    return {"months_of_reserves": months, "years_to_depletion": years_left}.get(indicator, pct)(value)


def peers_context(forecast: Forecast, library_id: str) -> dict:
    """The "Among its peers" table: this library's figure on each indicator of
    :mod:`cml.peers`, the portfolio's quartiles and where it stands, formatted. A library not
    ranked on an indicator shows why in place of the figure (or its change in pounds, where a
    percentage of nil or less means nothing)."""
    row = forecast.peers[forecast.peers["library_id"] == library_id].iloc[0]
    latest, since = row["accounts_to"], row["reserves_change_from"]
    labels = {"months_of_reserves": "Months of reserves (cover)",
              "reserves_change_share": f"Change in free reserves since {since}",
              "years_to_depletion": "Years left at that year's deficit",
              "council_share": "Share of income from the council",
              "self_generated_share": "Share of income it raised itself"}
    rows = []
    for indicator, label in labels.items():
        standing, value = row[f"{indicator}_standing"], row[indicator]
        ranked = not math.isnan(value)
        shown = (_peer_figure(indicator, value) if ranked
                 else money(row["reserves_change"]) if standing == FROM_NIL_OR_BELOW else standing)
        rows.append({"label": label, "value": shown,
                     **{q: _peer_figure(indicator, row[f"{indicator}_{q}"]) for q in QUARTILES},
                     "standing": standing if ranked or standing == FROM_NIL_OR_BELOW else "not ranked"})
    return {"rows": rows, "accounts_to": latest, "libraries": int(row["libraries"]), "change_years": CHANGE_YEARS}


def what_if_sentence(run_out: str | None, base_run_out: str | None, horizon: str, free: float, base_free: float) -> str:
    """The difference a what-if makes, in one sentence a treasurer reads.

    >>> what_if_sentence("2030/31", "2028/29", "2034/35", -5000.0, -32295.0)
    'Free reserves run out in 2030/31 instead of 2028/29, 2 years later, and end 2034/35 at £(5,000) instead of £(32,295): £27,295 better.'
    >>> what_if_sentence(None, "2028/29", "2034/35", 1200.0, -300.0)
    'Free reserves no longer run out by 2034/35 (the baseline: in 2028/29), and end 2034/35 at £1,200 instead of £(300): £1,500 better.'
    """
    if run_out == base_run_out:
        when = f"still run out in {run_out}" if run_out else f"still last beyond {horizon}"
    elif run_out is None:
        when = f"no longer run out by {horizon} (the baseline: in {base_run_out})"
    elif base_run_out is None:
        when = f"now run out in {run_out} (the baseline: not by {horizon})"
    else:
        years = parse_fy(run_out) - parse_fy(base_run_out)
        when = (f"run out in {run_out} instead of {base_run_out}, {abs(years)} year{'s' if abs(years) != 1 else ''} "
                f"{'later' if years > 0 else 'earlier'}")
    change = free - base_free
    by = "no different" if abs(change) < 0.5 else f"{money(abs(change))} {'better' if change > 0 else 'worse'}"
    return f"Free reserves {when}, and end {horizon} at {money(free)} instead of {money(base_free)}: {by}."


def what_if_context(forecast: Forecast, summaries: pd.DataFrame) -> dict:
    """A what-if briefing's lead box: the changed settings in words and the difference from the baseline."""
    description = forecast.scenarios.set_index("scenario").loc[WHAT_IF, "description"]
    applies_to = SETTING_WORDS["levers.libraries"] + ":"  # the briefing is of the library the levers are aimed at
    changes = [c for c in description.removeprefix("What if: ").split("; ") if not c.startswith(applies_to)]
    lead, base = summaries.loc[WHAT_IF], summaries.loc[BASELINE]
    horizon = forecast.projection["financial_year"].max()
    return {"changes": changes, "baseline_run_out_year": base["run_out_year"],
            "baseline_horizon_free_reserves": float(base["horizon_free_reserves"]),
            "sentence": what_if_sentence(lead["run_out_year"], base["run_out_year"], horizon,
                                         float(lead["horizon_free_reserves"]), float(base["horizon_free_reserves"]))}


def review_context(forecast: Forecast, library_id: str) -> dict | None:
    """The "change since the last review" page (None without ``--previous``): the library's row of
    :class:`cml.review.Review`, with the inputs and assumptions that changed."""
    if forecast.review is None:
        return None
    review = forecast.review
    row = review.libraries[review.libraries["library_id"] == library_id].iloc[0].to_dict()
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    change = clean["run_out_change_years"] or 0.0
    return clean | {
        "run_out_words": years_change(change, (clean["run_out_year"] is None) != (clean["previous_run_out_year"] is None)),
        "previous_chance_words": None if clean["previous_chance_3_years"] is None else chance(clean["previous_chance_3_years"]),
        "chance_words": None if clean["chance_3_years"] is None else chance(clean["chance_3_years"]),
        "inputs_changed": review.inputs_changed, "assumptions_changed": review.assumptions_changed,
        "previous_run_at": review.previous_run_at[:10], "previous_accounts_year": review.previous_accounts_year,
    }


def briefing_context(forecast: Forecast, library_id: str, run_info: dict) -> dict:
    """Everything one library's briefing shows, as plain data.

    The headline, the table and the charts use the baseline scenario, or a trustee's what-if
    when the run has one (it leads its own briefing, the baseline beside it); the scenarios
    table shows every scenario in ``forecast.summary``, so new scenarios appear without a
    template change.
    """
    library = _records(forecast.libraries[forecast.libraries["library_id"] == library_id])
    if not library:
        raise KeyError(f"no library with id {library_id!r}")
    library = library[0]
    summaries = forecast.summary[forecast.summary["library_id"] == library_id].set_index("scenario")
    lead_name = WHAT_IF if WHAT_IF in summaries.index else BASELINE  # a trustee's what-if leads its own briefing
    is_library = forecast.projection["library_id"] == library_id
    projection = forecast.projection[is_library & (forecast.projection["scenario"] == lead_name)].sort_values("year")
    baseline = summaries.loc[lead_name]
    years = _year_rows(projection)
    lines = forecast.lines[(forecast.lines["library_id"] == library_id) & (forecast.lines["scenario"] == lead_name)]
    trustees = forecast.trustee_projections[forecast.trustee_projections["library_id"] == library_id]
    chart_years = {"financial_year": [r["financial_year"] for r in years], "actual": [r["actual"] for r in years]}
    own_risk = forecast.risk[(forecast.risk["library_id"] == library_id) & (forecast.risk["scenario"] == lead_name)]
    risk = risk_context(own_risk, parse_fy(library["last_actual_year"]) + 1)
    last_actual_free = [r["free_reserves"] for r in years if r["actual"]][-1]
    sensitivity = sensitivity_context(forecast, library_id, years[-1]["financial_year"])
    return {
        "title": f"{library['name']}: sustainability briefing",
        "footer_title": library["name"],
        "run": run_context(run_info, library_id),
        "horizon": years[-1]["financial_year"],
        "library": {"name": library["name"], "library_id": library_id,
                    "transfer_date": long_date(library["transfer_date"]),
                    "reserves_target_months": float(library["reserves_target_months"]),
                    "original_running_costs": float(library["original_running_costs"]),
                    "year_end": library["year_end"], "standard_year_end": library["year_end"] == STANDARD_YEAR_END,
                    "accounts_made_up_to": long_date(library["accounts_made_up_to"]),
                    "receipts_and_payments": library["accounts_basis"] == RECEIPTS_AND_PAYMENTS},
        "rag_rule": rag_rule(forecast),
        "method": method_context(forecast, library_id),
        "cafe_ratio": _cafe_ratio(forecast, library_id),
        "headline": {
            "rag": baseline["rag_now"],
            "rag_badge": rag_badge(baseline["rag_now"]),
            "run_out_year": baseline["run_out_year"],
            "last_actual_year": library["last_actual_year"],
            "months_now": baseline["months_of_cover_now"],
            "last_grant_year": baseline["last_grant_year"],
            "months_at_grant_end": baseline["months_of_cover_at_grant_end"],
            "why": why_sentence(baseline["last_grant_year"], library["last_actual_year"], baseline["annual_gap"],
                                baseline["annual_gap_years"], runs_out=baseline["run_out_year"] is not None),
        },
        "what_if": what_if_context(forecast, summaries) if lead_name == WHAT_IF else None,
        "review": review_context(forecast, library_id),
        "bands_too_narrow": forecast.backtest is not None and not _backtest_context(forecast)["calibrated"],
        "action": action_context(forecast, library_id),
        "reserves": reserves_context(forecast, library_id),
        "sensitivity": sensitivity,
        "peers": peers_context(forecast, library_id),
        "years": years,
        "scenarios": _scenario_rows(forecast, library_id),
        "first_forecast_year": fy_label(parse_fy(library["last_actual_year"]) + 1),
        "risk": risk,
        "simulation": simulation_context(forecast),
        "trustees": _trustee_rows(trustees, projection),
        "trustee_years_not_shown": year_ranges(
            [fy_label(year) for year in sorted(set(trustees["year"]) - set(projection["year"]))]),
        "lease": _lease(library, forecast),
        "fund": _fund_rules(forecast),
        "fund_grants": _fund_grants(forecast, library["last_actual_year"]),
        "chart_data": {
            "reserves": {**chart_years, **{key: [r[key] for r in years]
                                           for key in ("free_reserves", "closing_reserves", "reserves_target")},
                         "target_months": float(library["reserves_target_months"]),
                         "last_grant_year": baseline["last_grant_year"],
                         "run_out_year": baseline["run_out_year"],
                         "fan": risk["fan"] | {"start": last_actual_free}},
            "income": {**chart_years,
                       "income": _income_by_group(lines, [r["year"] for r in years]),
                       "expenditure": [r["expenditure"] for r in years]},
        } | ({"tornado": sensitivity["chart"]} if sensitivity else {}),
    }


# ---------------------------------------------------------------------------------------------
# The portfolio report: checked against the libraries, then flattened to plain data


def library_sums(forecast: Forecast) -> pd.DataFrame:
    """Per scenario and year, the portfolio's figures recomputed from the libraries' own rows.

    ``deficit`` adds up the deficits of the libraries in deficit (what they must find from
    reserves); surpluses elsewhere do not offset it. The council's spending is summed from
    its per-library rows, one column per component, as ``council_cost_<component>``.
    """
    projection = forecast.projection
    keys = [projection["scenario"], projection["year"]]
    sums = projection.assign(deficit=(-projection["surplus"]).clip(lower=0),
                             free_reserves_held=projection["free_reserves"].clip(lower=0),
                             free_reserves_short=(-projection["free_reserves"]).clip(lower=0)).groupby(keys)[
        [*PORTFOLIO_MONEY, "free_reserves_held", "free_reserves_short"]].sum()
    counts = projection.groupby(keys)["rag"].value_counts().unstack(fill_value=0)
    for status in RAG_ORDER:
        sums[f"libraries_{status.lower()}"] = counts.get(status, 0)
    council = forecast.council.pivot_table(index=["scenario", "year"], columns="component", values="amount",
                                           aggfunc="sum", fill_value=0.0)
    council["total"] = council.sum(axis=1)
    return sums.join(council.add_prefix(COUNCIL_COST)).fillna(0.0)


def check_portfolio_totals(forecast: Forecast) -> None:
    """Raise :class:`PortfolioMismatch` unless every portfolio figure is the sum over libraries.

    The portfolio report prints ``forecast.portfolio``; the briefings print the libraries'
    rows. A committee member who adds up the briefings must get the report's figures, so the
    run stops if they differ by more than a penny.
    """
    expected = library_sums(forecast)
    reported = forecast.portfolio.set_index(["scenario", "year"])
    missing = sorted(set(expected.columns) - set(reported.columns))
    if missing:
        raise PortfolioMismatch(f"the portfolio has no column for {', '.join(missing)}")
    difference = reported[expected.columns].sub(expected).abs()
    bad = difference.isna() | (difference > PORTFOLIO_TOLERANCE_POUNDS)
    if bad.any().any():
        where = [f"{scenario} {year}: {column} differs by {difference.loc[(scenario, year), column]}"
                 for (scenario, year), row in bad.iterrows() for column in row.index[row]]
        raise PortfolioMismatch("portfolio figures are not the sum of the libraries': " + "; ".join(where[:10]))


def _fy_range(labels: pd.Series) -> tuple[str, str]:
    """Earliest and latest of some financial-year labels."""
    ordered = sorted(labels, key=parse_fy)
    return ordered[0], ordered[-1]


def _council_components(portfolio: pd.DataFrame) -> list[str]:
    """The components of the council's spending that the portfolio frame carries, in its order."""
    total = f"{COUNCIL_COST}total"
    return [column.removeprefix(COUNCIL_COST) for column in portfolio.columns
            if column.startswith(COUNCIL_COST) and column != total]


def _scenario_context(name: str, description: str, portfolio: pd.DataFrame, summary: pd.DataFrame,
                      last_actual_year: str, option: pd.Series, components: list[str]) -> dict:
    """One scenario's portfolio figures from the latest accounts to the horizon, and its totals.

    ``option`` is the scenario's row of :func:`cml.projection.option_comparison`, which gives
    the council's cost, the fund's unpaid claims and the libraries running out over the years
    every scenario is compared on; its first forecast year is the scenario's own (a re-run of an
    earlier review forecasts years that have accounts). Deficits add the years after
    ``last_actual_year``.
    """
    first_forecast_year = option["first_forecast_year"]
    rows = _records(portfolio[portfolio["year"] >= parse_fy(last_actual_year)].sort_values("year"))
    for row in rows:
        row["actual"] = row["year"] < parse_fy(first_forecast_year)
    run_outs = summary["run_out_year"].dropna()
    return {
        "name": name,
        "label": readable(name),
        "description": description,
        "first_forecast_year": first_forecast_year,
        "fund_exhausted_in": option["fund_exhausted_in"],
        "years": rows,
        "now": rows[0],
        "horizon": rows[-1],
        "libraries_running_out": option["libraries_running_out"],
        "first_run_out_year": _fy_range(run_outs)[0] if len(run_outs) else None,
        "forecast_deficits": sum(row["deficit"] for row in rows[1:]),
        "council_cost": {component: option.get(f"{COUNCIL_COST}{component}", 0.0)
                         for component in [*components, "total"]},
        "fund_unmet": option["fund_unmet_fund_empty"],
        "fund_over_caps": option["fund_unmet_over_caps"],
        "new_money": option["council_new_money"], "earmarked": option["council_earmarked_fund"],
        "new_money_real": option["council_new_money_real"],
        "extra_new_money": option["extra_council_new_money"], "extra_new_money_real": option["extra_council_new_money_real"],
        "kept": option["libraries_kept_from_running_out"], "years_gained": option["years_of_service_gained"],
        "running_out_supported": option["libraries_running_out_supported"],
        "simulated": {"mean": option.get("simulated_running_out_mean"), "low": option.get("simulated_running_out_p10"),
                      "high": option.get("simulated_running_out_p90"),
                      "fund_dry_words": chance(float(option.get("probability_fund_exhausted_at_horizon", 0.0))),
                      "exposure": option.get("interim_exposure_1_in_10")},
    }


def _library_rows(forecast: Forecast, scenarios: list[str]) -> list[dict]:
    """The appendix table: each library's status now and run-out year under each scenario.

    Sorted by baseline run-out year, soonest first, then by name: the libraries that need a
    conversation first come first.
    """
    summary = forecast.summary.set_index(["library_id", "scenario"])
    rows = []
    for library_id, name in forecast.libraries[["library_id", "name"]].itertuples(index=False):
        baseline = summary.loc[(library_id, BASELINE)]
        rows.append({
            "name": name,
            "rag": baseline["rag_now"],
            "rag_badge": rag_badge(baseline["rag_now"]),
            "months_now": baseline["months_of_cover_now"],
            "run_out_years": [summary.loc[(library_id, scenario), "run_out_year"] for scenario in scenarios],
            "horizon_free_reserves": baseline["horizon_free_reserves"],
        })
    never = 10_000
    return sorted(rows, key=lambda r: (parse_fy(r["run_out_years"][0]) if r["run_out_years"][0] else never, r["name"]))


def _priority(libraries: list[dict], by_year: str) -> list[dict]:
    """Libraries whose free reserves run out by ``by_year`` on the baseline (the first run-out
    year in each appendix row), soonest first: who a support officer should see first."""
    return [{"name": row["name"], "run_out_year": row["run_out_years"][0]} for row in libraries
            if row["run_out_years"][0] and parse_fy(row["run_out_years"][0]) <= parse_fy(by_year)]


def _fund_rules(forecast: Forecast) -> dict:
    """How the contingency fund starts and when a library may claim, on the baseline."""
    settings = forecast.settings[BASELINE]
    ledger = forecast.fund[forecast.fund["scenario"] == BASELINE].sort_values("year")
    first = ledger.iloc[0]
    return {"opening_year": first["financial_year"], "opening_balance": first["opening"],
            "first_payments": first["payments"], "first_closing": first["closing"],
            "floor_months": settings["fund.reserves_floor_months"], "cap_per_claim": settings["fund.cap_per_claim"],
            "cap_per_library": settings["fund.cap_per_library"],
            "pays_building_failures": settings["fund.pays_building_failures"],
            "pays_reserves_floor": settings["fund.pays_reserves_floor"],
            "interim_provision": forecast.assumptions.interim_provision_per_year,
            "interim_years": forecast.assumptions.interim_provision_years,
            "real_terms_inflation": forecast.assumptions.real_terms_inflation}


def _backtest_context(forecast: Forecast) -> dict | None:
    """The backtest's scores by horizon (normal-year targets, then Covid-year targets) and its red
    flags, as the report's trust section prints them; None when the run made no backtest."""
    if forecast.backtest is None:
        return None
    scores = forecast.backtest.scores

    def by_horizon(covid: bool) -> list[dict]:
        part = scores[scores["through_covid"] == covid]
        mae = part.pivot(index="horizon", columns="method", values="mean_absolute_error")
        bias = part.pivot(index="horizon", columns="method", values="bias")["cml"]
        pairs = part.pivot(index="horizon", columns="method", values="pairs")["cml"]
        ours = part[part["method"] == "cml"].set_index("horizon")
        return [{"horizon": int(h), "pairs": int(pairs[h]), "cml": mae.loc[h, "cml"], "flat": mae.loc[h, "flat"],
                 "trend": mae.loc[h, "three_year_trend"], "bias": bias[h], "covered_50": ours.loc[h, "covered_50"],
                 "covered_90": ours.loc[h, "covered_90"], "crps": ours.loc[h, "crps"],
                 "beats": bool(mae.loc[h, "cml"] < min(mae.loc[h, "flat"], mae.loc[h, "three_year_trend"]))}
                for h in mae.index]

    normal = by_horizon(False)
    first = normal[0] if normal else {"covered_50": 0.0, "covered_90": 0.0}
    return {"calibrated": abs(first["covered_50"] - 0.5) <= 0.1 and abs(first["covered_90"] - 0.9) <= 0.1,
            "draws": BACKTEST_DRAWS,"cutoffs": describe_cutoffs(forecast.backtest.rows), "normal": normal, "covid": by_horizon(True),
            "beats_all": all(row["beats"] for row in normal), "flags": _records(forecast.backtest.flags)}


def _portfolio_fan(forecast: Forecast, every_year: pd.DataFrame, last_actual_year: str) -> dict:
    """The baseline's bands of combined free reserves over the forecast years."""
    risk = forecast.portfolio_risk[forecast.portfolio_risk["scenario"] == BASELINE].sort_values("year")
    risk = risk[risk["year"] > parse_fy(last_actual_year)]
    start = float(every_year.loc[every_year["financial_year"] == last_actual_year, "free_reserves"].iloc[0])
    return {f"p{p}": risk[f"combined_free_reserves_p{p}"].tolist() for p in (5, 25, 75, 95)} | {"start": start}


def _portfolio_risk_rows(forecast: Forecast, scenarios: list[str], first_forecast_year: int) -> list[dict]:
    """Per scenario, from the simulation: libraries run out within 3 and 5 years and by the
    horizon (average and the 1-in-10 range), and the chance the contingency fund runs dry."""
    rows = []
    for name in scenarios:
        risk = forecast.portfolio_risk[forecast.portfolio_risk["scenario"] == name].set_index("year")
        horizon = int(risk.index.max())
        points = []
        for year in (first_forecast_year + 2, first_forecast_year + 4, horizon):
            at = risk.loc[min(year, horizon)]
            points.append({"by": fy_label(min(year, horizon)), "mean": float(at["libraries_run_out_mean"]),
                           "low": int(at["libraries_run_out_p10"]), "high": int(at["libraries_run_out_p90"])})
        rows.append({"label": readable(name), "points": points,
                     "fund_dry": chance(float(risk["probability_fund_exhausted"].iloc[-1]))})
    return rows


def _portfolio_sensitivity_rows(forecast: Forecast) -> list[dict]:
    """Each sensitivity step's change in libraries running out and in the council's cost, both
    sides, the largest change in cost first."""
    return steps_both_sides(forecast.portfolio_sensitivity, "council_cost_change", lambda row: {
        "running_out": int(row["libraries_running_out"]), "change": int(row["libraries_running_out_change"]),
        "cost": signed_money(row["council_cost_change"])})


def _recommendation(forecast: Forecast, scenarios: list[dict]) -> dict | None:
    """The recommendation paragraph: the officer's option and reason, with the model's figures
    for it beside the status quo's."""
    if forecast.recommendation is None:
        return None
    chosen = next(s for s in scenarios if s["name"] == forecast.recommendation.scenario)
    return {"label": chosen["label"], "reason": forecast.recommendation.reason, "option": chosen, "base": scenarios[0]}


def portfolio_context(forecast: Forecast, run_info: dict) -> dict:
    """Everything the portfolio report shows, as plain data, after checking it adds up."""
    check_portfolio_totals(forecast)
    scenarios = _scenarios(forecast)
    libraries = forecast.libraries
    last_actual_year = _fy_range(libraries["last_actual_year"])[0]
    descriptions = forecast.scenarios.set_index("scenario")["description"]
    components = _council_components(forecast.portfolio)
    options = option_comparison(forecast).set_index("scenario")
    by_scenario = [
        _scenario_context(name, descriptions[name], forecast.portfolio[forecast.portfolio["scenario"] == name],
                          forecast.summary[forecast.summary["scenario"] == name], last_actual_year,
                          options.loc[name], components)
        for name in scenarios
    ]
    baseline = by_scenario[0]
    every_year = forecast.portfolio[forecast.portfolio["scenario"] == BASELINE].sort_values("year")
    labels = every_year["financial_year"].tolist()
    transfer_years = libraries["transfer_date"].dt.year
    library_rows = _library_rows(forecast, scenarios)
    priority_by = fy_label(min(parse_fy(baseline["first_forecast_year"]) + PRIORITY_YEARS - 1, parse_fy(labels[-1])))
    return {
        "title": "Community Managed Libraries: sustainability forecast",
        "footer_title": "Community Managed Libraries: portfolio report",
        "run": run_context(run_info),
        "horizon": labels[-1],
        "last_actual_year": last_actual_year,
        "first_forecast_year": baseline["first_forecast_year"],
        "libraries_count": len(libraries),
        "rag_rule": rag_rule(forecast),
        "method": method_context(forecast),
        "backtest": _backtest_context(forecast),
        "simulation": simulation_context(forecast),
        "risk": _portfolio_risk_rows(forecast, scenarios, parse_fy(baseline["first_forecast_year"])),
        "fund": _fund_rules(forecast),
        "lease_threshold_years": forecast.settings[BASELINE]["lease.threshold_years"],
        "transfers": {"first": int(transfer_years.min()), "last": int(transfer_years.max())},
        "last_grant_years": _fy_range(libraries["last_grant_year"]),
        "share_at_risk_now": (baseline["now"]["libraries_red"] + baseline["now"]["libraries_amber"]) / len(libraries),
        "council_components": [readable(component) for component in components],
        "scenarios": by_scenario,
        "libraries": library_rows,
        "priority": _priority(library_rows, priority_by),
        "recommendation": _recommendation(forecast, by_scenario),
        "portfolio_sensitivity": _portfolio_sensitivity_rows(forecast),
        "priority_by": priority_by,
        "chart_data": {
            "rag": {"financial_year": labels, "scenario": baseline["label"], "last_actual_year": last_actual_year,
                    **{status: every_year[f"libraries_{status.lower()}"].tolist() for status in RAG_ORDER}},
            "portfolio_fan": {
                "financial_year": labels, "last_actual_year": last_actual_year, "scenario": baseline["label"],
                "central": every_year["free_reserves"].tolist(),
                "fan": _portfolio_fan(forecast, every_year, last_actual_year)},
            "portfolio_reserves": {
                "financial_year": labels, "last_actual_year": last_actual_year,
                "series": {readable(name): forecast.portfolio[forecast.portfolio["scenario"] == name]
                           .sort_values("year")["free_reserves"].tolist() for name in scenarios}},
        },
    }


# ---------------------------------------------------------------------------------------------
# Jobs and the worker pool (parent side)


@dataclass(frozen=True)
class Job:
    """One document to write: a template, its plain-data context, and where the PDF goes."""

    template: str
    context: dict
    path: Path


def briefing_path(briefings_dir: Path, library_id: str) -> Path:
    """``briefings_dir/<slug>.pdf``: a slug has no separators and no ``..``, so it cannot leave
    the folder (checked all the same)."""
    path = Path(briefings_dir) / f"{slugify(library_id)}.pdf"
    if path.resolve().parent != Path(briefings_dir).resolve():
        raise ValueError(f"library id {library_id!r} does not make a safe file name")
    return path


def briefing_paths(briefings_dir: Path, library_ids: Iterable[str]) -> dict[str, Path]:
    """Every library's briefing path, checked before anything is rendered: two ids that
    slugify alike are refused rather than one briefing overwriting the other."""
    paths: dict[str, Path] = {}
    owners: dict[Path, str] = {}
    for library_id in library_ids:
        path = briefing_path(briefings_dir, library_id)
        if path in owners:
            raise ValueError(f"library ids {owners[path]!r} and {library_id!r} give the same file name {path.name}")
        owners[path] = library_id
        paths[library_id] = path
    return paths


def pack_jobs(forecast: Forecast, out_dir: Path, run_info: dict) -> Iterator[Job]:
    """The portfolio report, then one briefing per library, each built as it is needed.

    A generator, so the workers render the first documents while this process builds the
    next contexts. The portfolio comes first: it is the longest document, and its totals
    check fails the run before any briefing is drawn.
    """
    paths = briefing_paths(Path(out_dir) / "briefings", forecast.libraries["library_id"])
    yield Job("portfolio.html", portfolio_context(forecast, run_info), Path(out_dir) / "portfolio.pdf")
    for library_id, path in paths.items():
        yield Job("briefing.html", briefing_context(forecast, library_id, run_info), path)


def make_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that each load WeasyPrint, fonts and templates once, at start-up, and
    exit by themselves if this process dies (even by SIGKILL, which runs no clean-up here)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
        max_tasks_per_child=WORKER_RECYCLE_AFTER,
    )


@contextmanager
def _progress(total: int, show: bool) -> Iterator[Any]:
    """A click progress bar, or a silent stand-in when output is not a terminal."""
    if show:
        with click.progressbar(length=total, label="Rendering PDFs") as bar:
            yield bar
    else:
        yield _Silent()


class _Silent:
    """Progress that goes nowhere."""

    def update(self, steps: int) -> None:
        """Ignore progress: nobody is watching a terminal."""


def run_jobs(jobs: Iterable[Job], pool: ProcessPoolExecutor, total: int, progress: bool = False) -> list[Path]:
    """Render every job in the pool, submitting each as soon as it is built; stop at the first
    failure, cancelling what has not started. ``total`` (the number of jobs) sizes the progress
    bar, as ``jobs`` may be a generator."""
    futures: list[Future] = []
    paths: list[Path] = []
    try:
        with _progress(total, progress) as bar:
            for job in jobs:
                job.path.parent.mkdir(parents=True, exist_ok=True)
                futures.append(pool.submit(render_job, job))
                paths.append(job.path)
            for future in as_completed(futures):
                future.result()
                bar.update(1)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return paths


def render_pack(forecast: Forecast, out_dir: Path, run_info: dict, jobs: int | None = None,
                progress: bool = False) -> list[Path]:
    """Write ``out_dir/portfolio.pdf`` and ``out_dir/briefings/<slug>.pdf`` for every library.

    ``jobs`` worker processes (default: one per core). ``run_info`` holds ``version``,
    ``run_at`` (ISO time), ``inputs_sha256`` and ``illustrative``. The caller makes the result
    atomic (render into a temporary folder, then swap). Returns the paths written, portfolio
    first.
    """
    documents = len(forecast.libraries) + 1
    workers = max(1, min(jobs or os.cpu_count() or 1, documents))
    with make_pool(workers) as pool:
        return run_jobs(pack_jobs(forecast, Path(out_dir), run_info), pool, documents, progress)


def render_briefing(forecast: Forecast, library_id: str, path: Path, run_info: dict) -> Path:
    """Write one library's briefing to ``path``, in this process (no pool for one document)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return render_job(Job("briefing.html", briefing_context(forecast, library_id, run_info), path))


# ---------------------------------------------------------------------------------------------
# Writing PDFs (worker side: the only code that imports WeasyPrint and matplotlib)


def is_template_url(url: str) -> bool:
    """Whether WeasyPrint may fetch ``url``: a ``data:`` URL or a file inside ``templates/``.

    Every network scheme is refused, and so is every other file: a template (or a value that
    slipped into one) asking for ``file:///etc/passwd`` as an attachment gets nothing.

    >>> is_template_url((TEMPLATES_DIR / "base.css").as_uri()), is_template_url("file:///etc/passwd")
    (True, False)
    >>> is_template_url((TEMPLATES_DIR / ".." / "cml" / "render.py").as_uri()), is_template_url("https://example.org/")
    (False, False)
    """
    parts = urlsplit(url)
    if parts.scheme == "data":
        return True
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return False
    return Path(url2pathname(parts.path)).resolve().is_relative_to(TEMPLATES_DIR)


def template_url_fetcher() -> URLFetcher:
    """A WeasyPrint 70 URL fetcher that only hands out ``templates/`` files and ``data:`` URLs.

    It fails the render (``fail_on_errors``) instead of leaving a gap in the document: a
    refused URL means a template is wrong. The class is made here, not at module level, so
    that importing :mod:`cml.render` does not import WeasyPrint.
    """
    from weasyprint.urls import URLFetcher

    class TemplateOnlyFetcher(URLFetcher):
        """Refuses whatever :func:`is_template_url` refuses, before opening anything."""

        def fetch(self, url: str, headers: dict | None = None):
            if not is_template_url(url):
                raise PermissionError(f"cml refuses to fetch {url!r}: only its own templates")
            return super().fetch(url, headers)

    return TemplateOnlyFetcher(fail_on_errors=True)


class _LoggedProblems(logging.Handler):
    """Collects what WeasyPrint logs as errors (a resource it could not use, a figure without
    alt text) while one document renders. Warnings are left alone: they include advice about
    the machine, such as a missing HarfBuzz subsetter, that is no fault of a template."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _PdfWriter:
    """One per process: WeasyPrint's font configuration, image cache, the parsed stylesheet,
    the fetcher and the jinja environment, shared by every document the process writes."""

    def __init__(self) -> None:
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        self.font_config = FontConfiguration()
        self.cache: dict = {}
        self.fetcher = template_url_fetcher()
        self.stylesheet = CSS(filename=TEMPLATES_DIR / STYLESHEET, font_config=self.font_config,
                              url_fetcher=self.fetcher)
        self.templates = template_environment()
        self.problems = _LoggedProblems()
        logging.getLogger("weasyprint").addHandler(self.problems)

    def lay_out(self, html: str) -> Document:
        """Paginate ``html`` as a tagged PDF/UA-1 document; raise if WeasyPrint complained."""
        from weasyprint import HTML

        self.problems.messages.clear()
        document = HTML(string=html, base_url=str(TEMPLATES_DIR) + os.sep, url_fetcher=self.fetcher).render(
            stylesheets=[self.stylesheet], font_config=self.font_config, cache=self.cache, pdf_variant=PDF_VARIANT)
        self._raise_problems()
        return document

    def write(self, html: str, path: Path) -> None:
        """Lay out ``html`` and write it as a tagged PDF/UA-1 file, each table header cell
        carrying the ``scope`` the HTML gave it (:func:`set_header_scopes`)."""
        buffer = io.BytesIO()
        self.lay_out(html).write_pdf(buffer, pdf_variant=PDF_VARIANT)
        self._raise_problems(path.name)
        Path(path).write_bytes(set_header_scopes(buffer.getvalue(), header_scopes(html)))

    def _raise_problems(self, where: str = "document") -> None:
        """Fail the document on any error WeasyPrint logged: a PDF with a gap is worse than none."""
        if self.problems.messages:
            raise RenderError(f"{where}: " + "; ".join(self.problems.messages))


@cache
def _pdf_writer() -> _PdfWriter:
    """This process's writer, made on first use (the pool's initializer makes it at start-up)."""
    return _PdfWriter()


def _start_worker(run_pid: int | None = None) -> None:
    """Pool initializer: watch the run's process, then load WeasyPrint, fonts, templates and
    matplotlib before the first job."""
    if run_pid is not None:
        watch_parent(run_pid)
    _pdf_writer()
    import cml.charts  # noqa: F401  (matplotlib takes about 0.4 s to import)


def template_environment() -> Environment:
    """Jinja2 set up for safe HTML: autoescaping, missing variables are errors, our filters."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(money=money, money_up=money_up, months=months, pct=pct)
    return environment


def lay_out(html: str) -> Document:
    """Paginate ``html`` without writing it: what the tests inspect for boxes off the page."""
    return _pdf_writer().lay_out(html)


def render_html(html: str, path: Path) -> Path:
    """Write ``html`` to a PDF at ``path`` with this process's shared writer."""
    _pdf_writer().write(html, Path(path))
    return Path(path)


def job_html(job: Job) -> str:
    """Draw the job's charts and fill its template: the HTML WeasyPrint will lay out."""
    from cml.charts import CHARTS

    charts = {name: CHARTS[name](data) for name, data in job.context["chart_data"].items()}
    return _pdf_writer().templates.get_template(job.template).render(**job.context, charts=charts)


def render_job(job: Job) -> Path:
    """Write one job's PDF (runs in a worker, or in this process for a single briefing)."""
    return render_html(job_html(job), job.path)


# ---------------------------------------------------------------------------------------------
# Workers that do not outlive their run


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is running (a zombie, killed but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _die_with_parent() -> None:
    """Linux: ask the kernel to kill this process when its parent (the forkserver) exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def watch_parent(run_pid: int) -> threading.Thread:
    """Exit this worker soon after the run's process ``run_pid`` dies, however it dies.

    A SIGKILLed run runs no clean-up, and a pool worker waiting for its next job would wait for
    ever. Two guards: the kernel's parent-death signal (the worker's parent is the forkserver,
    which exits when the run does), and a thread that checks every
    :data:`WATCH_PARENT_SECONDS` that the run is alive and the parent unchanged.
    """
    _die_with_parent()
    first_parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(WATCH_PARENT_SECONDS)
            if os.getppid() != first_parent or not _process_alive(run_pid):
                os._exit(ORPHANED_EXIT)

    thread = threading.Thread(target=watch, name="cml-watch-run", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------
# Table header scope in the PDF's structure tree (WeasyPrint issue #2508)


class _HeaderScopes(HTMLParser):
    """The PDF scope of every ``<th>`` in document order: the HTML's own ``scope``; without one,
    a header in ``<thead>`` heads a column and any other heads a row."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[str] = []
        self._in_head = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "thead":
            self._in_head += 1
        elif tag == "th":
            scope = (dict(attrs).get("scope") or "").lower()
            self.scopes.append(PDF_SCOPES.get(scope, "/Column" if self._in_head else "/Row"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead" and self._in_head:
            self._in_head -= 1


def header_scopes(html: str) -> list[str]:
    """``/Column`` or ``/Row`` for each ``<th>`` of ``html``, in order.

    >>> header_scopes('<table><thead><tr><th scope="col">Year</th><th>£</th></tr></thead>'
    ...               '<tr><th scope="row">2024/25</th><td>1</td></tr></table>')
    ['/Column', '/Column', '/Row']
    """
    parser = _HeaderScopes()
    parser.feed(html)
    parser.close()
    return parser.scopes


def _structure_kids(node) -> list:
    import pikepdf

    kids = node.get("/K")
    if kids is None:
        return []
    return [kid for kid in (list(kids) if isinstance(kids, pikepdf.Array) else [kids])
            if isinstance(kid, pikepdf.Dictionary)]


def table_headers(pdf) -> list:
    """Every ``/TH`` structure element of an open pikepdf document, in document order."""
    root = pdf.Root.get("/StructTreeRoot")
    found, stack = [], list(reversed(_structure_kids(root))) if root is not None else []
    while stack:
        node = stack.pop()
        if node.get("/S") == "/TH":
            found.append(node)
        stack.extend(reversed(_structure_kids(node)))
    return found


def _scope_from_position(header) -> str:
    """A header's scope from where it sits: a row of ``/THead`` heads columns, others rows."""
    row = header.get("/P")
    group = row.get("/P") if row is not None else None
    return "/Column" if group is not None and group.get("/S") == "/THead" else "/Row"


def set_header_scopes(pdf_bytes: bytes, scopes: list[str]) -> bytes:
    """The PDF with ``/A << /O /Table /Scope ... >>`` on every ``/TH`` structure element.

    WeasyPrint 70 tags header cells but drops the HTML ``scope``, so a screen reader cannot
    tell which column a figure is in. ``scopes`` (from :func:`header_scopes`) are applied in
    document order when the PDF has as many header cells as the HTML; otherwise each cell's
    scope comes from its position (:func:`_scope_from_position`).
    """
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        headers = table_headers(pdf)
        chosen = scopes if len(scopes) == len(headers) else [_scope_from_position(h) for h in headers]
        for header, scope in zip(headers, chosen):
            attributes = header.get("/A")
            table = None
            if isinstance(attributes, pikepdf.Dictionary):
                candidates = [attributes]
            elif isinstance(attributes, pikepdf.Array):
                candidates = [a for a in attributes if isinstance(a, pikepdf.Dictionary)]
            else:
                candidates = []
            table = next((a for a in candidates if a.get("/O") == "/Table"), None)
            if table is None:
                table = pikepdf.Dictionary(O=pikepdf.Name.Table)
                if attributes is None:
                    header.A = table
                elif isinstance(attributes, pikepdf.Array):
                    attributes.append(table)
                else:
                    header.A = pikepdf.Array([attributes, table])
            table.Scope = pikepdf.Name(scope)
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()

