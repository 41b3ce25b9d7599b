"""Every business rule on a small hand-worked case: change the rule and a test here goes red.

Each case is a few made-up libraries built in the test, with the figures worked by hand in the
docstring. The shipped scenario file gives the baseline settings; each test overrides what it pins.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cml.adjustments import apply_levers, lease_path, security_factor
from cml.forecasting import Fit, Fits
from cml.fund import FundRules, central_flows, roll_forward
from cml.projection import base_years, cover_and_rag, next_run_out, summarise, trend_base
from cml.scenarios import Scenario, load_scenarios

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"

NO_FIT = Fit("none", pd.DataFrame(columns=["growth", "growth_sd", "points"], dtype=float), 0.0, 0.0, 0.0, {})
NO_FITS = Fits(NO_FIT, NO_FIT, pd.DataFrame(columns=["library_id", "line", "sd"]))  # every line on the assumed rates


@pytest.fixture(scope="module")
def baseline(inputs) -> Scenario:
    return load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)[0]


def with_settings(scenario: Scenario, **changes) -> Scenario:
    """The scenario with settings changed (keys written with __ for the dot: fund__cap_per_claim)."""
    settings = {**scenario.settings, **{k.replace("__", "."): v for k, v in changes.items()}}
    return replace(scenario, settings=settings)


def grid_for(ids: list[str], years: range, last_actual: int) -> pd.DataFrame:
    grid = pd.DataFrame([(i, y) for i in ids for y in years], columns=["library_id", "year"])
    grid["actual_or_forecast"] = np.where(grid["year"] <= last_actual, "actual", "forecast")
    return grid


# ---------------------------------------------------------------------------------------------
# Leases (seed 000 para 28-30)

LEASE = pd.DataFrame({"library_id": ["a"], "lease_start": [pd.Timestamp("2015-10-01")], "lease_years": [10],
                      "year_end": ["31 March"]})
NO_EXTENSIONS = pd.DataFrame({"library_id": pd.Series(dtype=str), "year": pd.Series(dtype=int),
                              "years_added": pd.Series(dtype=float)})


def test_recorded_extension_then_one_rollover_per_trigger(baseline):
    """Lease 1 Oct 2015 + 10 = 1 Oct 2025; recorded +5 in 2018/19 -> 1 Oct 2030. Accounts to 2023/24.
    At 31 March 2025 (end of 2024/25): 5.5 left <= 7 -> extend (+5, to 2035), fees £2,000, 10.5 left;
    31 March 2029 (2028/29): 6.5 -> extend to 2040; 31 March 2034 (2033/34): 6.5 -> extend."""
    extensions = pd.DataFrame({"library_id": ["a"], "year": [2018], "years_added": [5.0]})
    path = lease_path(LEASE, extensions, grid_for(["a"], range(2015, 2035), 2023), baseline)
    fees = path[path["fees"] > 0]
    assert fees["year"].tolist() == [2024, 2028, 2033]
    assert fees["fees"].tolist() == [2000.0] * 3
    assert path.loc[path["year"] == 2018, "extension"].item() == "recorded"
    assert path.loc[path["year"] == 2024, "lease_years_remaining"].item() == pytest.approx(10.5, abs=0.01)


def test_a_very_short_lease_is_not_extended_two_years_running(baseline):
    """No history, accounts to 2024/25: at 31 March 2026 the lease (to 1 Oct 2025) has run out ->
    extend to 2030 (4.5 left, still <= 7), but not again at 31 March 2027; at 31 March 2028: 2.5 left
    -> extend to 2035."""
    path = lease_path(LEASE, NO_EXTENSIONS, grid_for(["a"], range(2015, 2028), 2024), baseline)
    assert path.loc[path["fees"] > 0, "year"].tolist() == [2025, 2027]


def test_option_1_is_one_deed_with_one_set_of_fees(baseline):
    """A new 10-year lease on top of the unexpired term in the first forecast year (2024/25): from
    1 Oct 2030 (recorded history) to 1 Oct 2040, fees once, no rollover to 2034/35 (5.5 years left then)."""
    extensions = pd.DataFrame({"library_id": ["a"], "year": [2018], "years_added": [5.0]})
    option_1 = with_settings(baseline, lease__new_lease_years=10)
    path = lease_path(LEASE, extensions, grid_for(["a"], range(2015, 2035), 2023), option_1)
    assert path.loc[path["fees"] > 0, "year"].tolist() == [2024]
    assert path.loc[path["year"] == 2034, "lease_years_remaining"].item() == pytest.approx(5.5, abs=0.01)


def test_funders_rule_counts_only_the_change_in_security():
    """Share lost 50%. Base year 2023 short -> its grants already show the loss: a short forecast year
    keeps 1.0 x base, and a secure one is not forecast above the base (prudence: 1.0, not 1 / 0.5).
    Base secure: a short year gets 0.5 x."""
    path = pd.DataFrame({"library_id": ["a"] * 3 + ["b"] * 3, "year": [2023, 2024, 2025] * 2,
                         "short_of_security": [True, True, False, False, True, False]})
    base = pd.DataFrame({"library_id": ["a", "b"], "year": [2023, 2023]})
    assert security_factor(path, base, 0.5).tolist() == [1.0, 1.0, 1.0, 1.0, 0.5, 1.0]


# ---------------------------------------------------------------------------------------------
# The base (what the first forecast year starts from)


def test_base_skips_abnormal_years_and_restates_to_the_last_actual_year(inputs):
    """Library 'a' (transferred 2015/16), accounts to 2021/22, abnormal 2020/21 and 2021/22, base
    of 2 years: 2018/19 and 2019/20. Café 100 and 121, income growth 10%: 100 x 1.1^3 = 133.1 and
    121 x 1.1^2 = 146.41, mean 139.755, dated 2021/22."""
    assumptions = replace(inputs.assumptions, base_years=2, abnormal_years=(2020, 2021), income_growth=0.10)
    libraries = pd.DataFrame({"library_id": ["a"], "transfer_date": [pd.Timestamp("2015-10-01")],
                              "year_end": ["31 March"]})
    reserves = pd.DataFrame({"library_id": "a", "year": range(2015, 2022)})
    case = replace(inputs, assumptions=assumptions, libraries=libraries, reserves=reserves)
    last = pd.Series({"a": 2021})
    years = base_years(case, last)
    assert years["year"].tolist() == [2018, 2019]
    actuals = pd.DataFrame({"library_id": "a", "year": [2018, 2019, 2020, 2021], "line": "cafe",
                            "amount": [100.0, 121.0, 5.0, 50.0]})
    base = trend_base(actuals, case, last, {2: years, 3: base_years(case, last, 3)}, NO_FITS)
    assert base["base"].item() == pytest.approx(139.755)
    assert base["base_year"].item() == 2021


def test_dated_cost_inflation_compounds_year_by_year_and_restates_the_base(inputs):
    """Costs 2% a year, but 2024/25 dated at 10% (an energy spike, then 2%). Utilities of 100 in
    2023/24 (the last actual): 110 in 2024/25, 112.20 in 2025/26. Restating a 2023/24 amount of
    100 to a last actual year of 2025/26 uses the same prices: 112.20. Income is unaffected (1%)."""
    from cml.projection import forecast_trend_lines

    assumptions = replace(inputs.assumptions, cost_growth=0.02, cost_growth_by_year=((2024, 0.10),),
                          income_growth=0.01)
    case = replace(inputs, assumptions=assumptions)
    base = pd.DataFrame({"library_id": "a", "line": ["utilities", "other_grants"],
                         "base": 100.0, "base_year": 2023})
    grid = pd.DataFrame({"library_id": "a", "year": [2023, 2024, 2025],
                         "actual_or_forecast": ["actual", "forecast", "forecast"]})
    rows = forecast_trend_lines(base, grid, case, NO_FITS).set_index(["line", "year"])["amount"]
    assert rows[("utilities", 2024)] == pytest.approx(110.0)
    assert rows[("utilities", 2025)] == pytest.approx(112.2)
    assert rows[("other_grants", 2025)] == pytest.approx(102.01)
    actuals = pd.DataFrame({"library_id": "a", "year": [2023], "line": "utilities", "amount": [100.0]})
    restated = trend_base(actuals, case, pd.Series({"a": 2025}), {1: actuals[["library_id", "year"]],
                                                                  3: actuals[["library_id", "year"]]}, NO_FITS)
    assert restated.set_index("line")["base"]["utilities"] == pytest.approx(112.2)


def test_first_forecast_year_is_the_last_actual_grown_once(scenario_forecast, inputs):
    """Shipped data, base of one normal year: every trend line in 2024/25 = 2023/24 x (1 + growth),
    but for the lumpy lines averaged over three years (other grants, building fabric repairs)."""
    lines = scenario_forecast.lines[scenario_forecast.lines["scenario"] == "baseline"]
    trend = set(inputs.lines.loc[inputs.lines["forecast"] == "trend", "line"]) - {"other_grants", "building_repairs"}
    by_year = lines[lines["line"].isin(trend)].pivot_table(index=["library_id", "line"], columns="year", values="amount")
    sides = inputs.lines.set_index("line")["side"]
    a = inputs.assumptions
    growth = np.where(by_year.index.get_level_values("line").map(sides) == "expenditure", a.cost_inflation(2024),
                      a.income_growth)
    ratio = (by_year[2024] / by_year[2023]).dropna()
    assert np.allclose(ratio, (1 + growth)[by_year[2023].notna() & by_year[2024].notna()])


def test_lumpy_lines_average_three_normal_years_in_todays_prices(scenario_forecast, inputs):
    """Anstey's other grants: the mean of 2019/20, 2022/23 and 2023/24 (2020/21-2021/22 are abnormal),
    each grown at 1% to 2023/24 prices, then 1% to 2024/25: (478.85 x 1.01^4 + 0 + 1,212.72) / 3 x 1.01
    = 576.04. Its lease is secure in 2024/25 (10.5 years left): no cut, and no gain over the base."""
    accounts = inputs.accounts[(inputs.accounts["library_id"] == "anstey") & (inputs.accounts["line"] == "other_grants")]
    amounts = accounts.set_index("year")["amount"].reindex([2019, 2022, 2023], fill_value=0.0)
    expected = sum(a * 1.01 ** (2023 - y) for y, a in amounts.items()) / 3 * 1.01
    lines = scenario_forecast.lines
    row = lines[(lines["scenario"] == "baseline") & (lines["library_id"] == "anstey") & (lines["line"] == "other_grants")
                & (lines["year"] == 2024)]
    assert row["amount"].item() == pytest.approx(expected)


def test_cafe_costs_move_with_cafe_sales_in_a_closure(scenario_forecast):
    """Closure 2025/26: café sales fall; café cost of sales falls in the same proportion (its ratio is fixed)."""
    lines = scenario_forecast.lines
    year = lines[(lines["year"] == 2025) & lines["line"].isin(["cafe", "cafe_costs"])]
    table = year.pivot_table(index=["scenario", "library_id"], columns="line", values="amount").dropna()
    ratio = table["cafe_costs"] / table["cafe"]
    assert np.allclose(ratio.loc["closure_2025"], ratio.loc["baseline"])
    assert (table.loc["closure_2025", "cafe"] < table.loc["baseline", "cafe"]).all()


# ---------------------------------------------------------------------------------------------
# Levers


def test_income_lever_moves_self_generated_income_only(baseline):
    """+20% on self-generated income: café 100 -> 120; other grants 50 and interest 10 unchanged."""
    grid = grid_for(["a"], range(2024, 2025), 2023)
    lines = pd.DataFrame({"library_id": "a", "year": 2024, "line": ["cafe", "other_grants", "interest"],
                          "side": "income", "group": ["self_generated", "grants", "interest"],
                          "amount": [100.0, 50.0, 10.0]})
    levers = with_settings(baseline, levers__income_change=0.2)
    out = apply_levers(lines, grid, levers, pd.DataFrame({"library_id": ["a"]}), set())
    assert out["amount"].tolist() == pytest.approx([120.0, 50.0, 10.0])


def test_saving_lever_comes_off_recurring_costs_pro_rata(baseline):
    """A saving of 100 a year from 2024/25: utilities 600 and insurance 400 (recurring, 1,000) each
    lose 10% -> 540 and 360; the one-off cost 1,000 is not recurring and stays; 2023/24 is actual."""
    grid = grid_for(["a"], range(2023, 2025), 2023)
    lines = pd.DataFrame({"library_id": "a", "year": [2023, 2024, 2024, 2024],
                          "line": ["utilities", "utilities", "insurance", "one_off_costs"], "side": "expenditure",
                          "group": ["running_costs", "running_costs", "running_costs", "operating"],
                          "amount": [600.0, 600.0, 400.0, 1000.0]})
    out = apply_levers(lines, grid, with_settings(baseline, levers__saving=100.0), pd.DataFrame({"library_id": ["a"]}),
                       {"one_off_costs"})
    assert out["amount"].tolist() == pytest.approx([600.0, 540.0, 360.0, 1000.0])


def test_extra_income_lever_is_a_planned_income_line_in_forecast_years_of_the_libraries_named(baseline):
    """£250 a year for library a only, accounts to 2023/24: a planned_income line of 250 in 2024/25
    and 2025/26 for a, nothing for b and nothing in 2023/24."""
    grid = grid_for(["a", "b"], range(2023, 2026), 2023)
    lines = pd.DataFrame({"library_id": ["a", "b"], "year": 2023, "line": "cafe", "side": "income",
                          "group": "self_generated", "amount": [100.0, 100.0]})
    scenario = with_settings(baseline, levers__extra_income=250.0, levers__libraries=["a"])
    out = apply_levers(lines, grid, scenario, pd.DataFrame({"library_id": ["a", "b"]}), set())
    planned = out[out["line"] == "planned_income"]
    assert list(zip(planned["library_id"], planned["year"], planned["amount"])) == [("a", 2024, 250.0), ("a", 2025, 250.0)]


# ---------------------------------------------------------------------------------------------
# The contingency fund (seed 000 para 15)


def fund_case(scenario: Scenario, needs: list[tuple], free: dict[str, float], surplus: dict[str, float],
              balance: float, years: tuple[int, ...] = (2024,)):
    """Libraries with 1,200 a year of recurring spending (100 a month)."""
    totals = pd.DataFrame([(lib, y, "forecast", surplus[lib], 1200.0) for lib in free for y in years],
                          columns=["library_id", "year", "actual_or_forecast", "surplus", "recurring_spending"])
    needs = pd.DataFrame(needs, columns=["library_id", "year", "kind", "amount"])
    scenario = with_settings(scenario, fund__opening_balance=balance, fund__opening_year="2024/25")
    flows = central_flows(totals, needs, pd.Series(dtype=float), pd.Series(free), pd.Series(0.0, index=list(free)),
                          list(years))
    return roll_forward(flows, FundRules.of(scenario, 0.0))


def test_fund_pays_emergencies_in_order_and_records_need_over_the_caps(baseline):
    """Fund £6,000, cap £5,000 a claim. Claims: 'b' failure £8,000 -> capped at £5,000 (£3,000 over
    caps); 'a' income cut £4,000. Order: failures before income cuts, so 'b' is paid £5,000 and 'a'
    gets the £1,000 left (£3,000 unpaid, fund empty). No reserves-floor claims in the baseline."""
    rolled = fund_case(baseline, [("a", 2024, "income_cut", 4000.0), ("b", 2024, "building_failure", 8000.0)],
                       {"a": 50.0, "b": 900.0}, {"a": -500.0, "b": -500.0}, 6000.0)
    claims = rolled.claims.set_index("library_id")
    assert claims.loc["b", ["paid", "unmet_over_caps", "unmet_fund_empty"]].tolist() == [5000.0, 3000.0, 0.0]
    assert claims.loc["a", ["paid", "unmet_over_caps", "unmet_fund_empty"]].tolist() == [1000.0, 0.0, 3000.0]
    assert set(rolled.claims["kind"]) == {"building_failure", "income_cut"}
    assert rolled.ledger["closing"].item() == 0.0


def test_fewest_months_of_cover_first_within_a_kind(baseline):
    """Two failures of £3,000, fund £4,000: 'b' (free £100 - £500 = -£400, -4 months) is paid first in
    full; 'a' (£2,000 - £500: 15 months) gets £1,000."""
    rolled = fund_case(baseline, [("a", 2024, "building_failure", 3000.0), ("b", 2024, "building_failure", 3000.0)],
                       {"a": 2000.0, "b": 100.0}, {"a": -500.0, "b": -500.0}, 4000.0)
    assert rolled.claims.set_index("library_id")["paid"].to_dict() == {"b": 3000.0, "a": 1000.0}


def test_programme_grants_are_not_held_to_the_caps(baseline):
    """A programme grant of £20,000 (the council's decision) is paid whole, though the cap is £15,000
    a library, and does not use the cap: a later £5,000 failure is still paid."""
    rolled = fund_case(baseline, [("a", 2024, "programme", 20000.0), ("a", 2025, "building_failure", 5000.0)],
                       {"a": 0.0}, {"a": 0.0}, 100000.0, years=(2024, 2025))
    assert rolled.claims["paid"].tolist() == [20000.0, 5000.0]


def test_reserves_floor_top_ups_only_when_the_scenario_pays_them(baseline):
    """Free £100 (1 month) less a £50 deficit = £50; floor 3 months = £300, so a top-up of £250 -
    only with fund.pays_reserves_floor."""
    assert fund_case(baseline, [], {"a": 100.0}, {"a": -50.0}, 1000.0).claims.empty
    topped = fund_case(with_settings(baseline, fund__pays_reserves_floor=True), [], {"a": 100.0}, {"a": -50.0}, 1000.0)
    assert topped.claims[["kind", "paid"]].values.tolist() == [["reserves_floor", 250.0]]


def test_a_library_that_has_run_out_claims_nothing_more(baseline):
    """'a' starts the year £10 overdrawn: it has closed, so its £3,000 failure is not paid; 'b' is."""
    rolled = fund_case(baseline, [("a", 2024, "building_failure", 3000.0), ("b", 2024, "building_failure", 3000.0)],
                       {"a": -10.0, "b": 100.0}, {"a": 0.0, "b": 0.0}, 10000.0)
    assert rolled.claims["library_id"].tolist() == ["b"]


def test_top_up_need_left_unpaid_is_not_claimed_again(baseline):
    """Floor £300 (3 months of £100). Free £100, deficit £50 a year, fund empty: 2024 need £250
    unpaid; 2025 the shortfall is £300 (floor) - £0 (free £50 less £50) = £300, of which £250 was
    already counted: new need £50."""
    topped = with_settings(baseline, fund__pays_reserves_floor=True)
    rolled = fund_case(topped, [], {"a": 100.0}, {"a": -50.0}, 0.0, years=(2024, 2025))
    assert rolled.claims["claimed"].tolist() == pytest.approx([250.0, 50.0])


def test_interest_is_a_rate_on_positive_opening_cash(baseline):
    """2% on opening cash: 'a' £1,000 -> £20; 'b' overdrawn (-£200) earns nothing."""
    totals = pd.DataFrame({"library_id": ["a", "b"], "year": 2024, "actual_or_forecast": "forecast",
                           "surplus": 0.0, "recurring_spending": 1200.0})
    flows = central_flows(totals, pd.DataFrame(columns=["library_id", "year", "kind", "amount"]), pd.Series(dtype=float),
                          pd.Series({"a": 1000.0, "b": -200.0}), pd.Series({"a": 0.0, "b": 0.0}), [2024])
    rolled = roll_forward(flows, FundRules.of(baseline, 0.02))
    assert rolled.interest.set_index("library_id")["amount"].to_dict() == {"a": 20.0, "b": 0.0}


# ---------------------------------------------------------------------------------------------
# Cover, RAG and the headline


def rag_case(inputs, free: list[float], policy: float = 6, spending: list[float] | None = None, lookahead: int = 5):
    years = list(range(2024, 2024 + len(free)))
    frame = pd.DataFrame({"library_id": "a", "year": years, "free_reserves": free, "free_reserves_supported": free,
                          "recurring_spending": spending or [1200.0] * len(free)})
    case = replace(inputs, assumptions=replace(inputs.assumptions, not_green_within_years=lookahead))
    return cover_and_rag(frame, pd.DataFrame({"library_id": ["a"], "reserves_target_months": [policy]}), case)


def test_a_library_running_out_within_the_look_ahead_is_not_green(inputs):
    """£2,400 of free reserves is 24 months of £100 a month: Green on cover. They run out in year 3,
    within 5 years, so years 1-2 are Amber; with a 1-year look-ahead year 1 is Green."""
    assert rag_case(inputs, [2400.0, 1200.0, -10.0])["rag"].tolist() == ["Amber", "Amber", "Red"]
    assert rag_case(inputs, [2400.0, 1200.0, -10.0], lookahead=1)["rag"].tolist() == ["Green", "Amber", "Red"]


def test_the_library_own_reserves_policy_raises_the_amber_line(inputs):
    """9 months of cover: Green against the 6-month line, Amber against a 12-month policy."""
    assert rag_case(inputs, [900.0], policy=6)["rag"].tolist() == ["Green"]
    assert rag_case(inputs, [900.0], policy=12)["rag"].tolist() == ["Amber"]


def test_months_of_cover_use_recurring_spending(inputs):
    """£600 of free reserves over £1,200 of recurring spending = 6 months, whatever one-off costs add."""
    frame = rag_case(inputs, [600.0])
    assert frame["months_of_cover"].item() == pytest.approx(6.0)
    assert frame["reserves_target"].item() == pytest.approx(600.0)


def test_next_run_out_looks_only_forward():
    frame = pd.DataFrame({"library_id": ["a"] * 3, "year": [1, 2, 3], "free": [-1.0, 5.0, 5.0]})
    assert next_run_out(frame, "free").isna().all()


def test_annual_gap_averages_the_stated_number_of_years():
    """Forecast years without grant: gaps 100, 200, 600 (recurring spending less own income).
    Over 2 years: 150; over 3: 300. The one-off £1,000 in year 1 is not part of the gap."""
    rows = pd.DataFrame({"scenario": "baseline", "library_id": "a", "name": "A", "year": [2023, 2024, 2025, 2026],
                         "financial_year": ["2023/24", "2024/25", "2025/26", "2026/27"],
                         "actual_or_forecast": ["actual", "forecast", "forecast", "forecast"],
                         "council_grant": 0.0, "income": [1000.0, 1000.0, 1000.0, 1000.0], "fund_support": 0.0,
                         "recurring_spending": [1000.0, 1100.0, 1200.0, 1600.0],
                         "expenditure": [1000.0, 2100.0, 1200.0, 1600.0], "months_of_cover": 1.0, "rag": "Red",
                         "free_reserves": 1.0, "free_reserves_supported": 1.0, "closing_reserves": 1.0})
    libraries = pd.DataFrame({"library_id": ["a"], "last_grant_year": ["2021/22"]})
    council = pd.DataFrame(columns=["scenario", "library_id", "year", "component", "amount"])
    assert summarise(rows, libraries, council, 2)["annual_gap"].item() == pytest.approx(150.0)
    assert summarise(rows, libraries, council, 3)["annual_gap"].item() == pytest.approx(300.0)


# ---------------------------------------------------------------------------------------------
# The council's cost as a committee reads it


def test_interim_provision_runs_for_its_years_from_the_run_out_year(inputs):
    """£10,000 a year (seed 000 para 4) in 2024/25 prices, costs +3%, for 2 years from the run-out
    year 2025/26: £10,300 in 2025/26 and £10,609 in 2026/27, nothing in 2027/28; the actual year
    below nil does not count. With 2026/27 dated at 10%: £10,300 then £11,330."""
    from cml.projection import interim_provision, without_failed_libraries

    rows = pd.DataFrame({"library_id": "a", "year": [2023, 2024, 2025, 2026, 2027],
                         "actual_or_forecast": ["actual", "forecast", "forecast", "forecast", "forecast"],
                         "free_reserves_supported": [-5.0, 10.0, -1.0, -20.0, -30.0]})
    flat = replace(inputs.assumptions, cost_growth=0.03, cost_growth_by_year=())
    cost = interim_provision(rows, 10_000, 2, flat)
    assert cost["year"].tolist() == [2025, 2026]
    assert cost["amount"].tolist() == pytest.approx([10_300, 10_609])
    dated = replace(flat, cost_growth_by_year=((2026, 0.10),))
    assert interim_provision(rows, 10_000, 2, dated)["amount"].tolist() == pytest.approx([10_300, 11_330])
    council = pd.DataFrame({"library_id": "a", "year": [2025, 2026, 2026], "amount": [1000.0, 1000.0, 10_609.0],
                            "component": ["lease_fees", "lease_fees", "interim_provision"]})
    no_failures = pd.DataFrame(columns=["library_id", "year", "amount"])
    kept = without_failed_libraries(council, rows, no_failures)
    assert kept["component"].tolist() == ["lease_fees", "interim_provision"]  # run-out year's fees, then interim only


def test_a_building_failure_after_a_library_has_run_out_is_the_councils():
    """Run out in 2025/26. A £3,000 failure that year is the library's (claimed from the fund, as
    any running library's); £5,000 in 2026/27 and £7,000 in 2027/28 fall after it has closed, on a
    building that is the council's again: counted as its fabric repairs, beside interim provision,
    while the closed library's fees are not."""
    from cml.projection import without_failed_libraries

    rows = pd.DataFrame({"library_id": "a", "year": [2024, 2025, 2026, 2027], "actual_or_forecast": "forecast",
                         "free_reserves_supported": [10.0, -1.0, -20.0, -30.0]})
    council = pd.DataFrame({"library_id": "a", "year": [2025, 2026, 2026], "amount": [1000.0, 1000.0, 10_609.0],
                            "component": ["lease_fees", "lease_fees", "interim_provision"]})
    failures = pd.DataFrame({"library_id": "a", "year": [2025, 2026, 2027], "amount": [3000.0, 5000.0, 7000.0]})
    kept = without_failed_libraries(council, rows, failures)
    assert list(zip(kept["year"], kept["component"], kept["amount"])) == [
        (2025, "lease_fees", 1000.0), (2026, "fabric_repairs", 5000.0), (2026, "interim_provision", 10_609.0),
        (2027, "fabric_repairs", 7000.0)]


def test_options_show_new_money_apart_from_the_earmarked_fund_and_what_each_buys(scenario_forecast):
    """Extra cost = the scenario's new council money less the status quo's; libraries kept = those
    that run out under the status quo and not under the option; fund payments are not new money."""
    from cml.projection import option_comparison

    table = option_comparison(scenario_forecast).set_index("scenario")
    base = table.loc["baseline"]
    for name, row in table.iterrows():
        assert row["extra_council_new_money"] == pytest.approx(row["council_new_money"] - base["council_new_money"])
        assert row["council_new_money"] + row["council_earmarked_fund"] == pytest.approx(row["council_cost_total"])
    summary = scenario_forecast.summary.set_index(["scenario", "library_id"])["run_out_year_supported"]
    kept = (summary.loc["baseline"].notna() & summary.loc["option_3"].isna()).sum()
    assert table.loc["option_3", "libraries_kept_from_running_out"] == kept > 0
    assert table.loc["option_3", "council_new_money_real"] < table.loc["option_3", "council_new_money"]


def test_old_accounts_are_named_on_every_page(scenario_forecast, tmp_path):
    """Accounts to 2023/24 (year end 31 March 2024) and a run 19 months later: the warning shows."""
    from cml.render import Job, briefing_context, job_html

    info = {"version": "x", "run_at": "2025-11-24T07:00:00+00:00", "inputs_sha256": "0" * 64, "illustrative": True,
            "latest_accounts_year": "2023/24", "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 19,
            "accounts_stale": True}
    html = job_html(Job("briefing.html", briefing_context(scenario_forecast, "anstey", info), tmp_path / "b.pdf"))
    assert "Old accounts." in html and "accounts to 2023/24" in html
    fresh = job_html(Job("briefing.html", briefing_context(scenario_forecast, "anstey", {**info, "accounts_stale": False}),
                         tmp_path / "b.pdf"))
    assert "Old accounts." not in fresh


def test_a_failure_after_the_library_has_run_out_is_explained(scenario_forecast, tmp_path):
    """Kibworth runs out in 2024/25; its £25,000 failure in 2027/28 is not claimed, and its briefing says why."""
    from cml.render import Job, briefing_context, job_html

    info = {"version": "x", "run_at": "2025-11-24T07:00:00+00:00", "inputs_sha256": "0" * 64, "illustrative": True,
            "latest_accounts_year": "2023/24", "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 19,
            "accounts_stale": False}
    context = briefing_context(scenario_forecast, "kibworth", info)
    failures = next(s for s in context["scenarios"] if s["label"] == "Building failures")
    assert failures["claims"]["claimed"] == 0 and failures["own_failures"]
    html = job_html(Job("briefing.html", context, tmp_path / "k.pdf"))
    assert "The fund pays nothing towards it: the library's free reserves have run out in 2024/25" in html
