"""The scenario file: inheritance, every setting checked, errors located as file: scenario: key: reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cml.errors import InputError
from cml.scenarios import load_scenarios

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"


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


def test_a_scenario_overriding_an_assumption_badly_is_located(inputs, tmp_path):
    path = tmp_path / "scenarios.toml"
    path.write_text((SHIPPED / "scenarios.toml").read_text()
                    + '\n[late]\ninherits = "baseline"\ndescription = "x"\n[late.forecast]\nhorizon = "2034-35"\n')
    with pytest.raises(InputError) as caught:
        load_scenarios(path, inputs.assumptions)
    assert [str(p) for p in caught.value.problems] == [
        "scenarios.toml: late: forecast.horizon: '2034-35' is not a financial year like 2018/19"]
