"""Charts: each draws from plain data, embeds as an image, and says in words what it shows."""

from __future__ import annotations

import base64
import re
from html import unescape

import pytest

from cml.charts import CHARTS, income_chart, portfolio_fan_chart, portfolio_reserves_chart, rag_chart, reserves_chart, tornado_chart
from cml.render import money

YEARS = ["2015/16", "2016/17", "2017/18", "2018/19", "2019/20", "2020/21"]
ACTUAL = [True, True, True, False, False, False]
RESERVES = {
    "financial_year": YEARS, "actual": ACTUAL,
    "free_reserves": [4000.0, 6000.0, 5500.4, 2000.0, -1500.0, -5200.5],
    "closing_reserves": [5000.0, 7000.0, 6500.4, 3000.0, -500.0, -4200.5],
    "reserves_target": [3000.0, 3100.0, 3200.0, 3300.0, 3400.0, 3500.0],
    "target_months": 6.0, "last_grant_year": "2016/17", "run_out_year": "2019/20",
}
INCOME = {
    "financial_year": YEARS, "actual": ACTUAL,
    "income": {"Council grant": [8000.0, 6400.0, 0.0, 0.0, 0.0, 0.0],
               "Self-generated income": [2000.0, 2500.0, 2600.0, 2650.0, 2700.0, 2750.0]},
    "expenditure": [6000.0, 6500.0, 7000.0, 7200.0, 7400.0, 7600.0],
}
RAG = {"financial_year": YEARS, "scenario": "Baseline", "last_actual_year": "2017/18",
       "Red": [0, 0, 1, 2, 3, 3], "Amber": [1, 1, 1, 1, 0, 0], "Green": [2, 2, 1, 0, 0, 0]}
FAN = {"p5": [1000.0, -3000.0, -8000.0], "p25": [1800.0, -2000.0, -6000.0], "p75": [2200.0, -1000.0, -4400.0],
       "p95": [3000.0, 0.0, -2500.0], "start": 5500.4}
PORTFOLIO_FAN = {"financial_year": YEARS, "last_actual_year": "2017/18", "scenario": "Baseline",
                 "central": [1e5, 9e4, 8e4, 5e4, 1e4, -2e4],
                 "fan": {"p5": [3e4, -1e4, -5e4], "p25": [4e4, 0.0, -3e4], "p75": [6e4, 2e4, -1e4],
                         "p95": [7e4, 3e4, 0.0], "start": 8e4}}
PORTFOLIO = {"financial_year": YEARS, "last_actual_year": "2017/18",
             "series": {"Baseline": [1e5, 9e4, 8e4, 5e4, 1e4, -2e4], "Option 3": [1e5, 9e4, 8e4, 9e4, 1e5, 1.1e5]}}


def image_source(markup: str) -> tuple[str, bytes]:
    """The media type and bytes of a chart's data: URL."""
    media, data = re.search(r'src="data:([^;]+);base64,([^"]+)"', markup).groups()
    return media, base64.b64decode(data)


@pytest.mark.parametrize("draw, data", [(reserves_chart, RESERVES), (reserves_chart, {**RESERVES, "fan": FAN}),
                                        (income_chart, INCOME), (rag_chart, RAG),
                                        (portfolio_reserves_chart, PORTFOLIO), (portfolio_fan_chart, PORTFOLIO_FAN)])
def test_every_chart_is_an_svg_image_with_its_description_as_alt(draw, data) -> None:
    chart = draw(data)
    media, svg = image_source(chart.markup)
    assert media == "image/svg+xml" and b"<svg" in svg
    alt = unescape(re.search(r'alt="([^"]*)"', chart.markup).group(1))
    assert alt == chart.alt and YEARS[0] in alt and YEARS[-1] in alt


def test_png_is_the_measured_alternative_and_other_formats_are_refused() -> None:
    media, png = image_source(reserves_chart(RESERVES, "png").markup)
    assert media == "image/png" and png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="svg"):
        reserves_chart(RESERVES, "jpeg")


def test_reserves_alt_gives_latest_accounts_horizon_and_run_out() -> None:
    alt = reserves_chart(RESERVES).alt
    assert f"{money(5500.4)} at the end of 2017/18 (latest accounts)" in alt
    assert f"{money(-5200.5)} in 2020/21" in alt and "below zero in 2019/20" in alt
    assert "grant ends after 2016/17" in alt
    assert "stay above zero to 2020/21" in reserves_chart({**RESERVES, "run_out_year": None}).alt


def test_income_alt_adds_up_the_sources() -> None:
    alt = income_chart(INCOME).alt
    assert f"in 2017/18 income was {money(2600)} (Council grant £0, Self-generated income {money(2600)})" in alt
    assert f"against spending of {money(7600)}" in alt


def test_rag_and_portfolio_alt_give_counts_and_totals_per_scenario() -> None:
    assert "2017/18: 1 Red, 1 Amber, 1 Green. 2020/21: 3 Red, 0 Amber, 0 Green." in rag_chart(RAG).alt
    alt = portfolio_reserves_chart(PORTFOLIO).alt
    assert f"Baseline: {money(8e4)} in 2017/18, {money(-2e4)} in 2020/21" in alt
    assert f"Option 3: {money(8e4)} in 2017/18, {money(1.1e5)} in 2020/21" in alt


def test_alt_text_is_escaped_in_the_markup() -> None:
    chart = portfolio_reserves_chart({**PORTFOLIO, "series": {'Option "A" <b>': PORTFOLIO["series"]["Baseline"]}})
    assert '<b>' not in chart.markup and "&quot;A&quot;" in chart.markup


def test_the_registry_names_every_chart_a_template_uses() -> None:
    assert set(CHARTS) == {"reserves", "income", "rag", "portfolio_reserves", "portfolio_fan", "tornado"}


def test_the_fan_is_drawn_and_described_from_the_futures() -> None:
    """Two bands (90% and 50%) over the forecast years, starting from the last actual year, and
    the alt text gives the 90% range at the horizon."""
    plain, fanned = reserves_chart(RESERVES), reserves_chart({**RESERVES, "fan": FAN})
    assert image_source(fanned.markup)[1].count(b"<path") >= image_source(plain.markup)[1].count(b"<path") + 2
    assert f"between {money(-8000.0)} and {money(-2500.0)} for 9 in 10" in fanned.alt
    assert "9 in 10" not in plain.alt
    portfolio = portfolio_fan_chart(PORTFOLIO_FAN)
    assert f"between {money(-5e4)} and {money(0.0)}" in portfolio.alt


def test_the_tornado_is_described_side_by_side_and_leaves_out_a_side_not_run() -> None:
    chart = tornado_chart({"labels": ["A £6,000 repair", "Income growth, 1 point"], "horizon": "2034/35",
                           "lower": [None, -2457.0], "higher": [-6222.0, 2602.0]})
    assert ("A £6,000 repair: higher £(6,222); Income growth, 1 point: lower £(2,457), higher £2,602."
            in chart.alt)
    assert "data:image/svg+xml" in chart.markup
