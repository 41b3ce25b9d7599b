"""Change since the last review (cml.review, ``cml forecast --previous``): the same inputs run twice
report no change; a year forecast then and in the accounts now is set against its forecast; an
earlier pack that is not one is named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cml.errors import InputError
from cml.outputs import write_pack
from cml.render import render_briefing
from cml.review import compare, load_previous

from tests.test_render import RUN_INFO, pdf_pages


@pytest.fixture(scope="module")
def earlier_pack(scenario_forecast, inputs, tmp_path_factory) -> Path:
    """A pack of the same inputs (CSVs and run.json, no PDFs): last year's review, as written."""
    out = tmp_path_factory.mktemp("previous") / "outputs"
    write_pack(scenario_forecast, inputs, out)
    return out


def review_of(forecast, inputs, previous):
    return compare(previous, forecast.projection, forecast.summary, forecast.risk, inputs.checksums, inputs.assumptions.raw)


def test_the_same_inputs_twice_report_no_change(scenario_forecast, inputs, earlier_pack, tmp_path):
    review = review_of(scenario_forecast, inputs, load_previous(earlier_pack))
    assert review.inputs_changed == [] and review.assumptions_changed == []
    table = review.libraries
    assert len(table) == len(inputs.libraries)
    assert not table["accounts_changed"].any() and table["year_compared"].isna().all()
    assert (table["run_out_change_years"] == 0).all()
    assert table["chance_3_years"].tolist() == pytest.approx(table["previous_chance_3_years"].tolist())
    path = render_briefing(replace(scenario_forecast, review=review), "east-goscote", tmp_path / "b.pdf", RUN_INFO)
    page = " ".join(pdf_pages(path)[-1].split())
    assert "Change since the last review" in page
    assert "No new accounts since the last review" in page
    assert "No input file and no assumption has changed: the forecast is the same." in page


def test_a_year_forecast_then_is_set_against_the_accounts_now(scenario_forecast, inputs, earlier_pack):
    """The earlier pack forecast 2023/24 for East Goscote at free reserves 1,000 below what the
    accounts now show (it was made a year earlier): the review compares that year, and says the
    library's accounts are new."""
    previous = load_previous(earlier_pack)
    projection = previous.projection.copy()
    row = (projection["library_id"] == "east-goscote") & (projection["financial_year"] == "2023/24")
    projection.loc[row, "actual_or_forecast"] = "forecast"
    projection.loc[row, "free_reserves"] -= 1000.0
    review = review_of(scenario_forecast, inputs, replace(previous, projection=projection))
    east = review.libraries.set_index("library_id").loc["east-goscote"]
    assert east["year_compared"] == "2023/24" and bool(east["accounts_changed"])
    assert east["free_reserves_difference"] == pytest.approx(1000.0)
    assert not review.libraries.set_index("library_id").drop("east-goscote")["accounts_changed"].any()


def test_changed_inputs_and_assumptions_are_named(scenario_forecast, inputs, earlier_pack):
    previous = load_previous(earlier_pack)
    run = previous.run | {"inputs": previous.run["inputs"] | {"accounts.csv": "0" * 64},
                          "assumptions": {**previous.run["assumptions"],
                                          "growth": {**previous.run["assumptions"]["growth"], "costs": 0.03}}}
    review = review_of(scenario_forecast, inputs, replace(previous, run=run))
    assert review.inputs_changed == ["accounts.csv changed"]
    assert review.assumptions_changed == [f"growth.costs: {inputs.assumptions.raw['growth']['costs']} (instead of 0.03)"]


def test_a_folder_that_is_not_a_pack_is_named(tmp_path: Path, earlier_pack: Path):
    with pytest.raises(InputError) as caught:
        load_previous(tmp_path / "nowhere")
    assert "--previous" in caught.value.problems[0].column
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_previous(broken)
    assert caught.value.problems[0].file.endswith("run.json")
    (broken / "run.json").write_text((earlier_pack / "run.json").read_text(encoding="utf-8"), encoding="utf-8")
    pd.DataFrame({"scenario": ["baseline"]}).to_csv(broken / "projection.csv", index=False)
    with pytest.raises(InputError) as caught:
        load_previous(broken)
    files = {p.file.rsplit("/", 1)[-1] for p in caught.value.problems}
    assert files == {"projection.csv", "summary.csv", "risk.csv"}
