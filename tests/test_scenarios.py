"""Scenarios from seed 000 paras 14-34: each mechanism tested on the shipped data and on bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cml.errors import InputError
from cml.fund import pay_in_order
from cml.inputs import load_inputs
from cml.projection import build_forecast
from cml.scenarios import load_scenarios, parse_overrides

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(SHIPPED)


@pytest.fixture(scope="module")
def forecast(inputs):
    return build_forecast(inputs, load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions))


def portfolio(forecast, scenario: str) -> pd.DataFrame:
    return forecast.portfolio[forecast.portfolio["scenario"] == scenario].set_index("financial_year")


def test_fund_opens_at_280000_and_pays_the_58000_programme_grant(forecast):
    """Seed 000 paras 15 and 18: £280,000 in September 2020, less the £58,000 one-off grant."""
    ledger = forecast.fund[forecast.fund["scenario"] == "baseline"].set_index("financial_year")
    assert ledger.loc["2020/21", "opening"] == 280_000
    assert ledger.loc["2020/21", "payments"] == pytest.approx(58_000)
    assert ledger.loc["2020/21", "closing"] == pytest.approx(222_000)


def test_fund_never_pays_more_than_it_holds_and_records_unmet_claims(forecast):
    ledger = forecast.fund
    assert (ledger["closing"] >= -1e-6).all()
    claims = forecast.claims
    assert (claims["paid"] + claims["unmet"] - claims["claimed"]).abs().max() < 1e-6
    exhausted = ledger[(ledger["scenario"] == "baseline") & (ledger["closing"] <= 0.005)]
    assert len(exhausted), "the baseline fund should run dry before the horizon on the illustrative data"
    after = ledger[(ledger["scenario"] == "baseline") & (ledger["year"] > exhausted["year"].min())]
    assert (after["unmet"] > 0).any()


def test_no_library_draws_more_than_its_cap(forecast, inputs):
    scenario = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]
    drawn = forecast.claims.groupby(["scenario", "library_id"])["paid"].sum()
    assert drawn.max() <= scenario["fund.cap_per_library"] + 1e-6


def test_pay_in_order_stops_when_the_fund_is_dry():
    claims = pd.DataFrame({"claimed": [10.0, 20.0, 30.0]})
    assert pay_in_order(claims, 25.0).tolist() == [10.0, 15.0, 0.0]


def test_option_1_ten_year_lease_means_fewer_extensions_and_more_grant_income(forecast):
    """Seed 000 paras 28-31: one 10-year lease instead of repeated 5-year rollovers."""
    leases = forecast.leases
    extensions = leases.groupby("scenario")["extended"].sum()
    assert extensions["option_1"] < extensions["baseline"]
    lines = forecast.lines[forecast.lines["line"] == "other_grants"].groupby("scenario")["amount"].sum()
    assert lines["option_1"] > lines["baseline"]


def test_option_2_moves_fabric_repairs_of_full_repairing_libraries_to_the_council(forecast, inputs):
    """Seed 000 para 32: the council would take back the building fabric of 17 libraries."""
    option_2 = portfolio(forecast, "option_2")
    assert (option_2.loc["2025/26":, "council_cost_fabric_repairs"] > 0).all()
    full = set(inputs.libraries.loc[inputs.libraries["lease_type"] == "full_repairing", "library_id"])
    assert len(full) == 17
    fabric = forecast.lines.query("scenario == 'option_2' and line == 'building_repairs' and year > 2023")
    assert not set(fabric["library_id"]) & full


def test_option_3_council_takes_about_200000_a_year_of_running_costs(forecast):
    """Seed 000 para 33: about £200,000 per annum. On the illustrative data it is £190k-£260k."""
    option_3 = portfolio(forecast, "option_3")
    assert 190_000 <= option_3.loc["2024/25", "council_cost_running_costs"] <= 260_000
    assert (option_3["libraries_red"].loc["2025/26":] == 0).all()


def test_building_failures_are_claimed_from_the_fund_unless_the_council_carries_the_fabric(forecast):
    failures = forecast.claims[forecast.claims["kind"] == "building_failure"]
    assert set(failures["scenario"]) == {"building_failures"}
    with_option_2 = portfolio(forecast, "option_2_with_failures")
    assert with_option_2["council_cost_fabric_repairs"].sum() > portfolio(forecast, "option_2")["council_cost_fabric_repairs"].sum()


def test_a_closure_loses_weekly_income_across_all_libraries(forecast):
    """Seed 000 para 16: about £3,000 a week; 16 weeks = £48,000, then a quarter of a year's income."""
    income = forecast.projection.groupby(["scenario", "financial_year"])["self_generated_income"].sum()
    lost = income["baseline"] - income["closure_2025"]
    assert lost["2025/26"] == pytest.approx(16 * 3_000, rel=1e-6)
    assert lost["2026/27"] == pytest.approx(0.25 * 52 * 3_000, rel=1e-6)
    assert lost["2027/28"] == pytest.approx(0.0, abs=1e-6)


def test_portfolio_council_cost_is_the_sum_of_its_components(forecast):
    components = [c for c in forecast.portfolio.columns if c.startswith("council_cost_") and c != "council_cost_total"]
    assert (forecast.portfolio[components].sum(axis=1) - forecast.portfolio["council_cost_total"]).abs().max() < 1e-6


def test_a_trustee_what_if_changes_only_the_named_library(inputs):
    overrides = parse_overrides(("levers.libraries=['anstey']", "levers.cost_change=-0.2",
                                 "levers.one_off_cost=5000", 'levers.one_off_year="2026/27"'))
    scenarios = load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions, overrides)
    chosen = [s for s in scenarios if s.name in ("baseline", "what_if")]
    result = build_forecast(inputs, chosen)
    horizon = result.summary.set_index(["scenario", "library_id"])["horizon_closing_reserves"]
    assert horizon["what_if", "anstey"] != pytest.approx(horizon["baseline", "anstey"])
    assert horizon["what_if", "desford"] == pytest.approx(horizon["baseline", "desford"])
    one_off = result.lines.query("scenario == 'what_if' and line == 'one_off_costs'")
    assert one_off[["library_id", "financial_year", "amount"]].values.tolist() == [["anstey", "2026/27", 5000.0]]


BAD_SCENARIOS = {
    "unknown key": ('[option_9]\ninherits = "baseline"\ndescription = "x"\n[option_9.fund]\ncap_per_clam = 1\n',
                    "scenarios.toml: option_9: fund.cap_per_clam: unknown setting"),
    "missing parent": ('[option_9]\ninherits = "nowhere"\ndescription = "x"\n',
                       "scenarios.toml: option_9: inherits: inherits from 'nowhere', which is not a scenario in this file"),
    "cycle": ('[a]\ninherits = "b"\ndescription = "x"\n[b]\ninherits = "a"\ndescription = "y"\n',
              "scenarios.toml: a: inherits: inheritance goes round in a cycle"),
    "wrong type": ('[option_9]\ninherits = "baseline"\ndescription = "x"\n[option_9.lease]\nextension_years = "ten"\n',
                   "scenarios.toml: option_9: lease.extension_years: 'ten' should be a whole number"),
    "out of range": ('[option_9]\ninherits = "baseline"\ndescription = "x"\n[option_9.funders]\nother_grants_lost_share = 1.5\n',
                     "scenarios.toml: option_9: funders.other_grants_lost_share: 1.5 is above the maximum 1"),
}


@pytest.mark.parametrize("case", BAD_SCENARIOS)
def test_bad_scenario_files_are_located(case, inputs, tmp_path):
    text, expected = BAD_SCENARIOS[case]
    path = tmp_path / "scenarios.toml"
    shutil.copy(SHIPPED / "scenarios.toml", path)
    path.write_text(path.read_text() + "\n" + text)
    with pytest.raises(InputError) as caught:
        load_scenarios(path, inputs.assumptions)
    assert any(str(p).startswith(expected) for p in caught.value.problems), [str(p) for p in caught.value.problems]


def test_the_2020_rerun_lists_the_19_business_grants_in_the_accounts(inputs):
    """Seed 000 para 24: 19 grants of £10,000-£25,000; the scenario's rows must match accounts.csv."""
    rerun = next(s for s in load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions) if s.name == "covid_2020_rerun")
    listed = {(r["library_id"], r["financial_year"], float(r["amount"])) for r in rerun["shocks.business_grants"]}
    accounts = inputs.accounts[inputs.accounts["line"] == "covid_business_grant"]
    assert listed == {(r.library_id, "2020/21", r.amount) for r in accounts.itertuples()}
    assert len(listed) == 19 and all(10_000 <= amount <= 25_000 for *_, amount in listed)
    assert rerun.assumptions.actuals_to == 2019


def test_the_2020_rerun_forecasts_from_2019_20_and_pays_the_programme_grant_from_the_fund(forecast):
    ledger = forecast.fund[forecast.fund["scenario"] == "covid_2020_rerun"].set_index("financial_year")
    assert ledger.loc["2020/21", "payments"] == pytest.approx(58_000)
    rows = forecast.projection[forecast.projection["scenario"] == "covid_2020_rerun"]
    assert set(rows.loc[rows["year"] >= 2020, "actual_or_forecast"]) == {"forecast"}


def test_a_scenario_overriding_an_assumption_badly_is_located(inputs, tmp_path):
    path = tmp_path / "scenarios.toml"
    path.write_text((SHIPPED / "scenarios.toml").read_text()
                    + '\n[late]\ninherits = "baseline"\ndescription = "x"\n[late.forecast]\nhorizon = "2034-35"\n')
    with pytest.raises(InputError) as caught:
        load_scenarios(path, inputs.assumptions)
    assert [str(p) for p in caught.value.problems] == [
        "scenarios.toml: late: forecast.horizon: '2034-35' is not a financial year like 2018/19"]


def test_options_table_reconciles_to_the_libraries(forecast):
    """The options appraisal's council cost is the sum of the libraries' council cost, per scenario."""
    from cml.outputs import option_comparison

    options = option_comparison(forecast).set_index("scenario")
    per_library = forecast.summary.groupby("scenario")["council_cost"].sum()
    assert (options["council_cost_total"] - per_library.reindex(options.index)).abs().max() < 0.01
    assert options.loc["option_3", "fund_exhausted_in"] == "not within horizon"
    assert options.loc["option_1", "change_from_baseline"] > 0
