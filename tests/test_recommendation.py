"""The officer's recommendation (recommendation.toml): checked against the scenarios, and quoted
in the portfolio report with the model's figures for the option beside the status quo's."""

from __future__ import annotations

from pathlib import Path

import pytest

from cml.errors import InputError
from cml.projection import option_comparison
from cml.render import Job, money, portfolio_context, render_job
from cml.scenarios import RECOMMENDATION_FILE, load_recommendation, load_scenarios

from tests.conftest import SHIPPED
from tests.test_render import RUN_INFO, pdf_text


@pytest.fixture(scope="module")
def scenarios(inputs):
    return load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)


def recommendation_from(tmp_path: Path, text: str, scenarios):
    path = tmp_path / RECOMMENDATION_FILE
    path.write_text(text, encoding="utf-8")
    return load_recommendation(path, scenarios)


@pytest.mark.parametrize("text, column, reason", [
    ('scenario = "option_9"\nreason = "r"\n', "scenario", "is not a scenario of scenarios.toml"),
    ('scenario = "baseline"\nreason = "r"\n', "scenario", "name an option"),
    ('scenario = "option_1"\nreason = ""\n', "reason", "say why"),
    ('scenario = "option_1"\nreason = "r"\nvote = 3\n', "vote", "unknown key"),
    ('scenario = 1\nreason = "r"\n', "scenario", "in quotes"),
])
def test_a_bad_recommendation_is_named_by_file_and_key(tmp_path, scenarios, text, column, reason):
    with pytest.raises(InputError) as caught:
        recommendation_from(tmp_path, text, scenarios)
    assert any(p.file == RECOMMENDATION_FILE and p.column == column and reason in p.reason for p in caught.value.problems)


def test_no_file_or_no_option_asks_only_to_note(tmp_path, scenarios):
    assert load_recommendation(tmp_path / RECOMMENDATION_FILE, scenarios) is None
    assert recommendation_from(tmp_path, 'scenario = ""\nreason = ""\n', scenarios) is None
    chosen = recommendation_from(tmp_path, 'scenario = "option_2"\nreason = "it fixes the roofs."\n', scenarios)
    assert (chosen.scenario, chosen.reason) == ("option_2", "it fixes the roofs")


def test_the_report_quotes_the_recommendation_with_the_model_figures(scenario_forecast, tmp_path):
    """The shipped recommendation (Option 1): its extra new money over the status quo, the
    libraries it keeps from running out and the simulated range, from the options table."""
    assert scenario_forecast.recommendation.scenario == "option_1"
    option = option_comparison(scenario_forecast).set_index("scenario").loc["option_1"]
    path = render_job(Job("portfolio.html", portfolio_context(scenario_forecast, RUN_INFO), tmp_path / "p.pdf"))
    text = " ".join(pdf_text(path).split())
    assert "The Committee is asked to support the recommendation to Cabinet to approve Option 1" in text
    extra = option["extra_council_new_money"]
    assert f"{money(abs(extra))} {'more' if extra >= 0 else 'less'} new Council money than the status quo" in text
    assert (f"In the simulated futures {option['simulated_running_out_mean']:.0f} libraries run out by 2034/35 under it "
            f"(8 futures in 10: {option['simulated_running_out_p10']:.0f} to {option['simulated_running_out_p90']:.0f})"
            ) in text
    if option["libraries_kept_from_running_out"] == 0:
        assert "On this forecast it keeps no library from running out by 2034/35" in text


def test_the_exposure_in_one_future_in_ten_is_the_interim_provision_beyond_the_central_count(scenario_forecast):
    """Interim provision £10,000 a year for 2 years (assumptions.toml) for each library beyond the
    central count that runs out in the 1-in-10 future."""
    a = scenario_forecast.assumptions
    options = option_comparison(scenario_forecast).set_index("scenario")
    beyond = (options["simulated_running_out_p90"] - options["libraries_running_out"]).clip(lower=0)
    assert (a.interim_provision_per_year, a.interim_provision_years) == (10000.0, 2)
    assert options["interim_exposure_1_in_10"].tolist() == pytest.approx((beyond * 20000.0).tolist())
