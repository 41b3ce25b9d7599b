"""The contingency fund (seed 000 paras 15, 18, 34): ledger, caps, order of claims, exhaustion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cml.fund import pay_in_order
from cml.scenarios import load_scenarios

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


def test_fund_opens_at_280000_and_pays_the_58000_programme_grant(scenario_forecast):
    """Seed 000 paras 15 and 18: £280,000 in September 2020, less the £58,000 one-off grant."""
    ledger = scenario_forecast.fund[scenario_forecast.fund["scenario"] == "baseline"].set_index("financial_year")
    assert ledger.loc["2020/21", "opening"] == 280_000
    assert ledger.loc["2020/21", "payments"] == pytest.approx(58_000)
    assert ledger.loc["2020/21", "closing"] == pytest.approx(222_000)


def test_fund_never_pays_more_than_it_holds_and_records_unmet_claims(scenario_forecast):
    """With standing top-ups (fund_top_ups) the fund runs dry; afterwards claims go unpaid."""
    ledger = scenario_forecast.fund
    assert (ledger["closing"] >= -1e-6).all()
    claims = scenario_forecast.claims
    unmet = claims["unmet_over_caps"] + claims["unmet_fund_empty"]
    assert (claims["paid"] + unmet - claims["claimed"]).abs().max() < 1e-6
    exhausted = ledger[(ledger["scenario"] == "fund_top_ups") & (ledger["closing"] <= 0.005)]
    assert len(exhausted), "standing top-ups should run the fund dry before the horizon on the illustrative data"
    after = ledger[(ledger["scenario"] == "fund_top_ups") & (ledger["year"] > exhausted["year"].min())]
    assert (after["unmet_fund_empty"] > 0).any()


def test_the_baseline_fund_pays_emergencies_only(scenario_forecast):
    """Seed 000 para 15: the status quo has no top-ups, so with no emergency the fund keeps its
    £222,000 to the horizon; the building-failure scenario pays within the £5,000 claim cap and
    reports Anstey's £18,000 failure (2025/26) as £13,000 over the caps. Kibworth's £25,000 failure
    in 2027/28 is not claimed: its free reserves ran out in 2024/25, so it has closed."""
    ledger = scenario_forecast.fund.query("scenario == 'baseline'")
    assert ledger["closing"].iloc[-1] == pytest.approx(222_000)
    claims = scenario_forecast.claims.query("scenario == 'building_failures'").set_index("library_id")
    assert claims.loc["anstey", ["claimed", "paid", "unmet_over_caps"]].tolist() == pytest.approx([18_000, 5_000, 13_000])
    assert "kibworth" not in claims.index


def test_no_library_draws_more_than_its_cap(scenario_forecast, inputs):
    scenario = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]
    drawn = scenario_forecast.claims.groupby(["scenario", "library_id"])["paid"].sum()
    assert drawn.max() <= scenario["fund.cap_per_library"] + 1e-6


def test_pay_in_order_stops_when_the_fund_is_dry():
    claims = np.array([[10.0, 20.0, 30.0], [10.0, 20.0, 30.0]])
    supported = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]) * 1000  # the second future pays the neediest (last) first
    assert pay_in_order(claims, supported, np.full((2, 3), 12_000.0), np.array([25.0, 35.0])).tolist() == [
        [10.0, 15.0, 0.0], [0.0, 5.0, 30.0]]


def test_the_2020_rerun_forecasts_from_2019_20_and_pays_the_programme_grant_from_the_fund(scenario_forecast):
    ledger = scenario_forecast.fund[scenario_forecast.fund["scenario"] == "covid_2020_rerun"].set_index("financial_year")
    assert ledger.loc["2020/21", "payments"] == pytest.approx(58_000)
    rows = scenario_forecast.projection[scenario_forecast.projection["scenario"] == "covid_2020_rerun"]
    assert set(rows.loc[rows["year"] >= 2020, "actual_or_forecast"]) == {"forecast"}


def test_a_fund_opening_later_still_sees_the_deficits_before_it_opened(inputs):
    """Free reserves keep falling before the fund opens: no claim before 2026/27 (the fund opening in
    2020/21 tops libraries up from 2024/25), and the ledger opens in 2026/27 with the £280,000."""
    from cml.projection import build_forecast
    from cml.scenarios import parse_overrides

    overrides = parse_overrides(('fund.opening_year="2026/27"', "fund.pays_reserves_floor=true"))
    scenarios = [s for s in load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions, overrides)
                 if s.name in ("baseline", "fund_top_ups", "what_if")]
    forecast = build_forecast(inputs, scenarios)
    claims = forecast.claims
    assert claims.query("scenario == 'what_if'")["year"].min() >= 2026
    assert claims.query("scenario == 'fund_top_ups'")["year"].min() == 2024
    ledger = forecast.fund.query("scenario == 'what_if'")
    assert ledger["year"].min() == 2026 and ledger["opening"].iloc[0] == 280_000
