"""The PDFs as a reader gets them: figures equal the projection's, names print as written, files
stay where they belong, nothing outside templates/ is fetched, and the output is tagged PDF/UA.

Everything runs on the real pipeline (shipped inputs, or the shipped inputs narrowed to two
libraries); PDFs are read back with pypdf. Only two briefings and two portfolio reports are
rendered, to keep the suite quick.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pandas as pd
import pytest
from pypdf import PdfReader

from cml.fy import fy_label, parse_fy, year_ranges
from cml.inputs import Inputs, load_inputs
from cml.projection import build_forecast
from cml.render import (
    BASELINE,
    PRIORITY_YEARS,
    TEMPLATES_DIR,
    Job,
    PortfolioMismatch,
    briefing_context,
    briefing_paths,
    chance,
    check_portfolio_totals,
    is_template_url,
    job_html,
    lay_out,
    money,
    money_up,
    signed_money,
    years_change,
    months,
    pct,
    portfolio_context,
    rag_badge,
    readable,
    render_briefing,
    render_html,
    render_pack,
    slugify,
    template_environment,
    template_url_fetcher,
)
from cml.scenarios import SCENARIO_FILE, load_scenarios

# WeasyPrint warns on import when the system lacks libharfbuzz-subset (it falls back to fontTools):
# a fact about the machine, not the code under test.
pytestmark = pytest.mark.filterwarnings("ignore:HarfBuzz-Subset will be required:DeprecationWarning")

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
RUN_INFO = {"version": "9.9.9", "run_at": "2025-11-24T07:00:00+00:00", "latest_accounts_year": "2023/24",
            "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 19, "accounts_stale": True,
            "inputs_sha256": "3f2a9c1b7d4e" + "0" * 52, "illustrative": True}
HOSTILE_ID = "../../evil"
HOSTILE_NAME = "Smith & Sons <Trust>"


def forecast_of(inputs: Inputs):
    """The real pipeline: every scenario in the shipped scenarios file."""
    return build_forecast(inputs, load_scenarios(SHIPPED / SCENARIO_FILE, inputs.assumptions))


@pytest.fixture(scope="module")
def shipped() -> Inputs:
    return load_inputs(SHIPPED)


@pytest.fixture(scope="module")
def forecast(scenario_forecast):
    """The shipped inputs, every scenario and the sensitivity steps (built once for the session)."""
    return scenario_forecast


@pytest.fixture(scope="module")
def hostile_forecast(shipped: Inputs):
    """Two shipped libraries, one renamed to a hostile id and a name full of markup."""
    renamed = {"sapcote": HOSTILE_ID}

    def narrow(frame):
        frame = frame[frame["library_id"].isin(["anstey", "sapcote"])].copy()
        frame["library_id"] = frame["library_id"].replace(renamed)
        return frame

    libraries = narrow(shipped.libraries)
    libraries.loc[libraries["library_id"] == HOSTILE_ID, "name"] = HOSTILE_NAME
    return forecast_of(dataclasses.replace(
        shipped, libraries=libraries, accounts=narrow(shipped.accounts), reserves=narrow(shipped.reserves),
        trustee_projections=narrow(shipped.trustee_projections)))


@pytest.fixture(scope="module")
def hostile_pack(hostile_forecast, tmp_path_factory) -> tuple[Path, list[Path]]:
    """The public entry point, worker pool and all, on the two-library forecast."""
    out = tmp_path_factory.mktemp("pack")
    return out, render_pack(hostile_forecast, out, RUN_INFO, jobs=2)


@pytest.fixture(scope="module")
def briefed_library(forecast) -> str:
    """A library whose reserves run out on the baseline and whose trustees sent a projection."""
    summary = forecast.summary[(forecast.summary["scenario"] == BASELINE) & forecast.summary["run_out_year"].notna()]
    with_trustees = summary[summary["library_id"].isin(forecast.trustee_projections["library_id"])]
    return with_trustees["library_id"].iloc[0]


@pytest.fixture(scope="module")
def briefing(forecast, briefed_library: str, tmp_path_factory) -> Path:
    return render_briefing(forecast, briefed_library, tmp_path_factory.mktemp("one") / "briefing.pdf", RUN_INFO)


def pdf_pages(path: Path) -> list[str]:
    """Each page's text, with runs of whitespace made single spaces."""
    return [re.sub(r"\s+", " ", page.extract_text()) for page in PdfReader(path).pages]


def pdf_text(path: Path) -> str:
    return " ".join(pdf_pages(path))


# ---------------------------------------------------------------------------------------------
# A briefing's figures are the projection's


def table_row(row) -> str:
    """A year of the projection as the briefing's table prints it."""
    own_and_other = row["income"] - row["council_grant"] - row["fund_support"]
    figures = [row["council_grant"], row["fund_support"], own_and_other, row["income"], row["expenditure"],
               row["surplus"], row["closing_reserves"], row["free_reserves"]]
    return " ".join([row["financial_year"], *map(money, figures), months(row["months_of_cover"]),
                     rag_badge(row["rag"])])


def test_briefing_headline_and_table_match_the_projection(forecast, briefed_library: str, briefing: Path) -> None:
    text = pdf_text(briefing)
    summary = forecast.summary.set_index(["scenario", "library_id"]).loc[(BASELINE, briefed_library)]
    rows = forecast.projection[(forecast.projection["scenario"] == BASELINE)
                               & (forecast.projection["library_id"] == briefed_library)]
    assert f"Reserves run out in {summary['run_out_year']}" in text
    assert f"Months of cover now {months(summary['months_of_cover_now'], unit=True)}" in text
    assert f"({summary['last_grant_year']}) {months(summary['months_of_cover_at_grant_end'], unit=True)}" in text
    assert f"The council grant ended in {summary['last_grant_year']};" in text
    assert f"by an average of {money(abs(summary['annual_gap']))} a year over {summary['annual_gap_years']}" in text
    latest_accounts = rows[rows["actual_or_forecast"] == "actual"].iloc[-1]
    assert table_row(latest_accounts) in text
    assert table_row(rows.iloc[-1]) in text
    assert "Figures may not sum due to rounding" in text


def test_briefing_gives_the_chance_of_running_out_from_the_risk_table(forecast, briefed_library: str,
                                                                      briefing: Path) -> None:
    """The headline's chances are the simulation's, in round words: within 3 years means by the
    third forecast year (counting the first), within 5 by the fifth."""
    text = pdf_text(briefing)
    risk = forecast.risk[(forecast.risk["scenario"] == BASELINE) & (forecast.risk["library_id"] == briefed_library)]
    risk = risk.set_index("year")["probability_run_out"]
    first = int(risk.index.min())
    for years in (3, 5):
        words = chance(float(risk[first + years - 1]))
        assert f"within {years} years (by {fy_label(first + years - 1)}) {words}" in text
    assert "Chance the reserves run out" in text and "simulated futures" in text


def test_action_box_gives_the_solved_targets_rounded_up_on_page_one(forecast, briefed_library: str,
                                                                   briefing: Path) -> None:
    """A library that runs out is told, on page 1, the extra income and the saving a year that
    keep its policy (rounded up to the pound: a target is a minimum), the weekly sum, and the
    same at the stated confidence."""
    target = forecast.targets.set_index("library_id").loc[briefed_library]
    assert target["extra_income"] > target["saving"] > 0
    first_page = " ".join(pdf_pages(briefing)[0].split())
    assert (f"Raise {money_up(target['extra_income'])} a year more from {target['from_financial_year']} "
            f"(about {money(target['extra_income'] / 52)} a week") in first_page
    assert f"or save {money_up(target['saving'])} a year" in first_page
    assert (f"To keep the policy in 8 in 10 futures (allowing for how far the forecast could be out): raise "
            f"{money_up(target['extra_income_at_confidence'])} a year or save {money_up(target['saving_at_confidence'])}"
            ) in first_page


def test_action_box_tells_a_library_above_its_policy_how_far_above(forecast, tmp_path: Path) -> None:
    targets = forecast.targets[forecast.targets["extra_income_at_confidence"] == 0]
    comfortable = targets.iloc[0]
    path = render_briefing(forecast, comfortable["library_id"], tmp_path / "b.pdf", RUN_INFO)
    first_page = " ".join(pdf_pages(path)[0].split())
    assert (f"No change needed on this forecast: free reserves stay above the policy every year to 2034/35; the "
            f"closest they come is {money(comfortable['headroom'])} above it, in {comfortable['headroom_financial_year']}"
            ) in first_page
    assert "stay above the policy in at least 8 in 10 simulated futures with no change" in first_page


def test_what_moves_the_answer_prints_each_step_from_the_sensitivity_table(forecast, briefed_library: str,
                                                                          briefing: Path) -> None:
    """Every step's row: its label, then each side's run-out year and change in horizon free
    reserves as sensitivity.csv has them ("not run" for a side outside the setting's range)."""
    text = " ".join(pdf_text(briefing).split())
    assert "What moves the answer" in text
    rows = forecast.sensitivity[forecast.sensitivity["library_id"] == briefed_library]
    horizon = forecast.projection["financial_year"].max()
    for label, step in rows.groupby("label"):
        sides = step.set_index("direction")
        cells = []
        for side in ("down", "up"):
            if side not in sides.index:
                cells.append("not run –")
                continue
            row = sides.loc[side]
            run_out = row["run_out_year"] if isinstance(row["run_out_year"], str) else f"not by {horizon}"
            change = years_change(row["run_out_change_years"], bool(row["beyond_horizon"]))
            cells.append(run_out + ("" if change == "no change" else f" ({change})") + " " + signed_money(row["horizon_change"]))
        assert f"{label} {' '.join(cells)}" in text


def test_what_reserves_to_hold_lists_the_scored_risks_and_their_sum(forecast, briefed_library: str,
                                                                    briefing: Path) -> None:
    text = " ".join(pdf_text(briefing).split())
    summary = forecast.reserves_requirement.set_index("library_id").loc[briefed_library]
    risks = forecast.reserves_risks[forecast.reserves_risks["library_id"] == briefed_library]
    assert summary["requirement"] == pytest.approx(risks["amount"].sum())
    assert f"Reserves its risks call for {money(summary['requirement'])}" in text
    for risk in risks[risks["amount"] > 0].itertuples():
        assert f"{pct(risk.probability)} {money(risk.impact_pounds)} {money(risk.amount)}" in text
    if summary["verdict"] == "short_later":
        assert (f"the deficits take them below that from {summary['below_requirement_from']}, to "
                f"{money(summary['lowest_free_reserves'])} in {summary['lowest_year']}") in text


def test_a_what_if_leads_its_briefing_with_the_changes_in_words_and_the_difference(shipped, tmp_path: Path) -> None:
    """``--set levers.cost_change=-0.1`` aimed at one library: the briefing's headline is the
    what-if's run-out year with the baseline's beside it, the change reads in words, and one
    sentence gives the difference at the horizon."""
    overrides = {"levers.libraries": ["east-goscote"], "levers.cost_change": -0.1}
    forecast = build_forecast(shipped, load_scenarios(SHIPPED / SCENARIO_FILE, shipped.assumptions, overrides))
    summary = forecast.summary.set_index(["scenario", "library_id"])
    lead, base = summary.loc[("what_if", "east-goscote")], summary.loc[(BASELINE, "east-goscote")]
    assert lead["horizon_free_reserves"] > base["horizon_free_reserves"]
    path = render_briefing(forecast, "east-goscote", tmp_path / "what-if.pdf", RUN_INFO)
    first_page = " ".join(pdf_pages(path)[0].split())
    assert "What-if briefing" in first_page and "Change in costs: -10% (instead of +0%)" in first_page
    assert "Trustees' levers apply to" not in first_page
    run_out = lead["run_out_year"]
    assert f"Reserves run out {'in ' + run_out if run_out else 'not by 2034/35'} (baseline: {base['run_out_year']})" in first_page
    better = money(lead["horizon_free_reserves"] - base["horizon_free_reserves"])
    assert (f"end 2034/35 at {money(lead['horizon_free_reserves'])} instead of {money(base['horizon_free_reserves'])}: "
            f"{better} better.") in first_page


def test_method_note_gives_the_dated_cost_inflation_of_the_baseline_years(forecast, briefing: Path) -> None:
    """The shipped cost inflation: 3% into 2024/25, 3.5% into 2025/26, then growth.costs 2.5%. The
    years are the baseline's forecast years (not those of a scenario re-run from earlier accounts)."""
    a = forecast.assumptions
    assert (a.cost_inflation(2024), a.cost_inflation(2025), a.cost_inflation(2026)) == (0.03, 0.035, 0.025)
    text = " ".join(pdf_text(briefing).split())
    assert "costs by 3% in 2024/25, 3.5% in 2025/26, then 2.5% a year" in text


def test_chance_words_never_claim_false_precision() -> None:
    assert [chance(p) for p in (0.0, 0.049, 0.05, 0.149, 0.15, 0.951)] == [
        "under 1 in 20", "under 1 in 20", "about 1 in 10", "about 1 in 10", "about 2 in 10", "over 19 in 20"]


def test_briefing_shows_every_scenario_and_the_trustees_projection(forecast, briefed_library: str,
                                                                   briefing: Path) -> None:
    text = pdf_text(briefing)
    for name in forecast.summary["scenario"].unique():
        assert readable(name) in text
    rows = forecast.projection
    projection = rows[(rows["scenario"] == BASELINE) & (rows["library_id"] == briefed_library)].set_index("year")
    trustees = forecast.trustee_projections[forecast.trustee_projections["library_id"] == briefed_library]
    theirs = trustees.iloc[0]
    ours = projection.loc[theirs["year"]]
    assert ours["fund_support"] == 0  # the status quo fund pays emergencies only: like for like with the trustees
    gap = ours["closing_reserves"] - theirs["closing_reserves"]
    assert f"{money(theirs['closing_reserves'])} {money(ours['closing_reserves'])} {money(gap)}" in text
    own_income = ours["income"] - ours["fund_support"]  # trustees plan without fund support
    assert f"{money(theirs['income'])} {money(own_income)} {money(own_income - theirs['income'])}" in text


def test_a_library_without_a_trustees_projection_says_so(forecast, briefed_library: str, tmp_path: Path) -> None:
    without = dataclasses.replace(forecast, trustee_projections=forecast.trustee_projections.iloc[0:0])
    context = briefing_context(without, briefed_library, RUN_INFO)
    assert context["trustees"] == []
    assert "No five-year projection from the trustees" in job_html(Job("briefing.html", context, tmp_path / "b.pdf"))


def test_trustees_years_after_the_horizon_are_named_not_dropped(forecast, briefed_library: str) -> None:
    trustees = forecast.trustee_projections
    late = trustees[trustees["library_id"] == briefed_library].tail(1).assign(year=2045, financial_year="2045/46")
    extended = dataclasses.replace(forecast, trustee_projections=pd.concat([trustees, late], ignore_index=True))
    context = briefing_context(extended, briefed_library, RUN_INFO)
    html = job_html(Job("briefing.html", context, Path("unused.pdf")))
    assert "The trustees' projection also covers 2045/46, after the end of this forecast: not shown." in html
    assert len(context["trustees"]) == len(briefing_context(forecast, briefed_library, RUN_INFO)["trustees"])


def test_briefing_has_two_to_six_pages_each_with_the_footer(forecast, briefed_library: str, briefing: Path) -> None:
    pages = pdf_pages(briefing)
    name = forecast.libraries.set_index("library_id").loc[briefed_library, "name"]
    assert 2 <= len(pages) <= 6
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert name in page and "cml 9.9.9" in page and "inputs 3f2a9c1b7d4e" in page
        assert "Illustrative data" in page and "24 November 2025" in page


def test_plain_words_end_the_briefing_with_the_settings_of_this_run(forecast, briefed_library: str,
                                                                    briefing: Path) -> None:
    """The glossary is on the last page, and a definition that depends on a setting (the RAG lines,
    the horizon, the fund's caps, the library's policy and taper) reads it from the context: change
    the setting and the words follow."""
    last_page = pdf_pages(briefing)[-1]
    assert "Plain words" in last_page
    for term in ("Free reserves:", "Designated funds:", "Months of cover:", "RAG:", "Taper:",
                 "Full or internal repairing lease:", "Horizon:", "Contingency fund:", "Reserves policy:"):
        assert term in last_page, term
    context = briefing_context(forecast, briefed_library, RUN_INFO)
    assert f"Horizon: the last year this forecast looks ahead to: {context['horizon']}." in last_page
    context["rag_rule"] |= {"red_below_months": 2, "amber_below_months": 9, "not_green_within_years": 4}
    context["horizon"] = "2040/41"
    context["fund"]["cap_per_claim"] = 7500
    context["library"] |= {"reserves_target_months": 4.0, "original_running_costs": 12345.0}
    html = template_environment().get_template("briefing.html").render(**context, charts={
        name: {"markup": ""} for name in context["chart_data"]})
    words = re.sub(r"\s+", " ", html[html.index("Plain words"):])
    assert ("Red under 2.0 months of cover, or run out; Amber under 9.0 months (or the reserves policy, if longer), "
            "or running out within 4 years") in words
    assert "looks ahead to: 2040/41." in words and "up to £7,500 a claim" in words
    assert "4 months' spending for this library" in words
    assert "the £12,345 a year the library cost to run when it transferred" in words
    assert f"the last was in {context['headline']['last_grant_year']}" in words


def boxes_past_the_right_margin(html: str) -> list[str]:
    """Every laid-out box (text, cell, table) whose right edge runs into the page's right margin."""
    from weasyprint.formatting_structure.boxes import MarginBox

    found = []
    for number, page in enumerate(lay_out(html).pages, start=1):
        page_box = page._page_box
        right = page_box.content_box_x() + page_box.width
        for child in page_box.children:
            if not isinstance(child, MarginBox):
                found += [f"page {number}: {type(box).__name__} {getattr(box, 'text', '')!r}"
                          for box in child.descendants() if box.position_x + box.margin_width() > right + 0.5]
    return found


def test_nothing_runs_off_the_page(forecast, briefed_library: str, tmp_path: Path) -> None:
    wide = '<html lang="en-GB"><title>x</title><body><table class="figures"><tr>{}</tr></table></body></html>'
    assert boxes_past_the_right_margin(wide.format("<td>£1,000,000,000</td>" * 14))  # the check can fail
    briefing = Job("briefing.html", briefing_context(forecast, briefed_library, RUN_INFO), tmp_path / "b.pdf")
    portfolio = Job("portfolio.html", portfolio_context(forecast, RUN_INFO), tmp_path / "p.pdf")
    assert boxes_past_the_right_margin(job_html(briefing)) == []
    assert boxes_past_the_right_margin(job_html(portfolio)) == []


def test_lease_facts_against_the_funders_threshold(forecast, briefed_library: str) -> None:
    library = forecast.libraries.set_index("library_id").loc[briefed_library]
    remaining = library["lease_years_remaining"]
    threshold = forecast.settings["baseline"]["funders.min_lease_years"]
    assert briefing_context(forecast, briefed_library, RUN_INFO)["lease"]["secure"] == (remaining >= threshold)
    stricter = dataclasses.replace(forecast, settings={**forecast.settings, "baseline": {
        **forecast.settings["baseline"], "funders.min_lease_years": remaining + 1}})
    assert not briefing_context(stricter, briefed_library, RUN_INFO)["lease"]["secure"]


def cut_other_grant_years(forecast, library_id: str) -> list[str]:
    """The forecast years in which the baseline cut this library's grants from other funders:
    where its other-grants line differs from a baseline that loses nothing for a short lease."""
    shipped = load_inputs(SHIPPED)
    baseline = next(s for s in load_scenarios(SHIPPED / SCENARIO_FILE, shipped.assumptions) if s.name == BASELINE)
    keeps_all = dataclasses.replace(baseline, settings={**baseline.settings, "funders.other_grants_lost_share": 0.0})
    uncut = build_forecast(shipped, [keeps_all]).lines

    def other_grants(lines):
        rows = lines[(lines["scenario"] == BASELINE) & (lines["library_id"] == library_id)
                     & (lines["line"] == "other_grants")]
        return rows.set_index("financial_year")["amount"]

    cut, whole = other_grants(forecast.lines), other_grants(uncut)
    return [year for year in whole.index if whole[year] > 0 and cut[year] < whole[year] - 0.005]


def test_lease_facts_name_the_baseline_extensions_and_short_years(forecast, briefed_library: str,
                                                                   briefing: Path) -> None:
    """The lease section reports the baseline's own lease path: the years a lease is extended
    (each with fees) and the years it is short of funders' security."""
    library = forecast.libraries.set_index("library_id").loc[briefed_library]
    leases = forecast.leases
    path = leases[(leases["scenario"] == BASELINE) & (leases["library_id"] == briefed_library)
                  & (leases["year"] > parse_fy(library["last_actual_year"]))]
    lease = briefing_context(forecast, briefed_library, RUN_INFO)["lease"]
    extended = path.loc[path["fees"] > 0, "financial_year"].tolist()
    assert extended, "the shipped status quo extends every lease at least once"
    assert extended == lease["extended_in"]
    lines = forecast.lines
    fees = lines[(lines["scenario"] == BASELINE) & (lines["library_id"] == briefed_library)
                 & (lines["line"] == "lease_fees") & (lines["year"] > parse_fy(library["last_actual_year"]))]
    assert sorted(fees["financial_year"]) == sorted(extended)  # each extension the briefing lists is paid for
    assert fees["amount"].sum() == pytest.approx(len(extended) * lease["extension_fees"])
    assert year_ranges(cut_other_grant_years(forecast, briefed_library)) == lease["short_in"]
    text = pdf_text(briefing)
    assert f"Extensions in this forecast {', '.join(lease['extended_in'])}:" in text
    assert f"each costing the library {money(lease['extension_fees'])} in fees" in text


def test_portfolio_recommends_the_libraries_that_run_out_soonest(forecast) -> None:
    """Recommendation (d) names every library whose free reserves run out within three
    forecast years on the baseline, and no other; (b) gives the year the fund runs out."""
    context = portfolio_context(forecast, RUN_INFO)
    by = parse_fy(context["first_forecast_year"]) + PRIORITY_YEARS - 1
    summary = forecast.summary[forecast.summary["scenario"] == BASELINE]
    soon = summary[summary["run_out_year"].map(lambda y: y is not None and parse_fy(y) <= by)]
    assert soon["name"].tolist(), "the shipped data has libraries that run out within three years"
    assert sorted(p["name"] for p in context["priority"]) == sorted(soon["name"])
    html = job_html(Job("portfolio.html", context, Path("unused.pdf")))
    for name, year in soon[["name", "run_out_year"]].itertuples(index=False):
        assert f"{name} ({year})" in html
    exhausted = context["scenarios"][0]["fund_exhausted_in"]
    assert (f"contingency fund runs out in {exhausted}" if exhausted else
            f"contingency fund lasts beyond {context['horizon']}") in html


def test_a_rerun_from_earlier_accounts_is_not_shown_as_accounts(forecast) -> None:
    """The Covid 2020 re-run forecasts 2023/24, so the portfolio must not call that row accounts."""
    context = portfolio_context(forecast, RUN_INFO)
    first_rows = {s["name"]: s["years"][0]["actual"] for s in context["scenarios"]}
    assert first_rows[BASELINE] is True
    assert first_rows["covid_2020_rerun"] is False
    html = job_html(Job("portfolio.html", context, Path("unused.pdf")))
    assert "(forecast, not accounts, under Covid 2020 rerun)" in html


# ---------------------------------------------------------------------------------------------
# Accessibility


@pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="pdfinfo (poppler-utils) is not installed")
def test_pdfinfo_reports_tagged(briefing: Path, hostile_pack) -> None:
    out, _ = hostile_pack
    for path in (briefing, out / "portfolio.pdf"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"^Tagged:\s+yes$", info, re.MULTILINE), path.name


def figures_alt_text(path: Path) -> list[str]:
    """The /Alt of every /Figure in the PDF's structure tree."""
    found = []

    def walk(node) -> None:
        node = node.get_object()
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif hasattr(node, "get"):
            if node.get("/S") == "/Figure":
                found.append(str(node.get("/Alt", "")))
            if "/K" in node:
                walk(node["/K"])

    walk(PdfReader(path).trailer["/Root"]["/StructTreeRoot"])
    return found


def test_pdf_has_language_title_and_described_charts(forecast, briefed_library: str, briefing: Path) -> None:
    reader = PdfReader(briefing)
    assert reader.trailer["/Root"]["/Lang"] == "en-GB"
    assert reader.metadata.title.endswith("sustainability briefing")
    alts = figures_alt_text(briefing)
    assert len(alts) == 3 and all(len(alt) > 80 for alt in alts)  # reserves, income, what moves the answer
    summary = forecast.summary.set_index(["scenario", "library_id"]).loc[(BASELINE, briefed_library)]
    assert money(summary["horizon_free_reserves"]) in alts[0]


# ---------------------------------------------------------------------------------------------
# Hostile names and file names


def test_hostile_name_prints_as_written_and_file_stays_in_briefings(hostile_pack) -> None:
    out, paths = hostile_pack
    hostile = out / "briefings" / "evil.pdf"
    assert hostile in paths and hostile.exists()
    assert all(path.resolve().is_relative_to(out.resolve()) for path in paths)
    assert sorted(p.name for p in (out / "briefings").iterdir()) == ["anstey.pdf", "evil.pdf"]
    text = pdf_text(hostile)
    assert f"{HOSTILE_NAME} Sustainability briefing" in text
    assert "&amp;" not in text and "&lt;" not in text
    assert HOSTILE_NAME in pdf_text(out / "portfolio.pdf")


def test_colliding_or_empty_slugs_are_refused(tmp_path: Path) -> None:
    assert slugify("../..") == "library"
    with pytest.raises(ValueError, match="same file name"):
        briefing_paths(tmp_path, ["Anstey", "anstey"])


# ---------------------------------------------------------------------------------------------
# Only the templates folder is ever fetched


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    (TEMPLATES_DIR / ".." / "cml" / "render.py").as_uri(),
    TEMPLATES_DIR.as_uri() + "/../inputs/libraries.csv",
    "file://evil.example/etc/passwd",
    "http://example.org/",
    "https://example.org/style.css",
    "ftp://example.org/x",
])
def test_fetcher_refuses_files_outside_templates_and_every_network_scheme(url: str) -> None:
    assert not is_template_url(url)
    with pytest.raises(PermissionError):
        template_url_fetcher().fetch(url)


def test_fetcher_serves_the_templates_folder() -> None:
    response = template_url_fetcher().fetch((TEMPLATES_DIR / "base.css").as_uri())
    assert b"@page" in response.read()
    response.close()


def test_an_attachment_link_cannot_embed_a_local_file(tmp_path: Path) -> None:
    from weasyprint.urls import FatalURLFetchingError

    html = ('<html lang="en-GB"><head><title>x</title>'
            '<link rel="attachment" href="file:///etc/passwd"></head><body><p>x</p></body></html>')
    with pytest.raises(FatalURLFetchingError, match="etc/passwd"):
        render_html(html, tmp_path / "attached.pdf")
    assert not (tmp_path / "attached.pdf").exists() or b"root:" not in (tmp_path / "attached.pdf").read_bytes()


def test_markup_in_data_is_text_not_a_link(forecast, briefed_library: str, tmp_path: Path) -> None:
    context = briefing_context(forecast, briefed_library, RUN_INFO)
    context["library"]["name"] = '<link rel="attachment" href="file:///etc/passwd">'
    html = template_environment().get_template("briefing.html").render(**context, charts={
        name: {"markup": ""} for name in context["chart_data"]})
    assert '<link rel="attachment"' not in html and "&lt;link rel=&#34;attachment&#34;" in html


def test_a_missing_context_value_is_an_error(forecast, briefed_library: str) -> None:
    context = briefing_context(forecast, briefed_library, RUN_INFO)
    del context["horizon"]
    with pytest.raises(jinja2.UndefinedError):
        template_environment().get_template("briefing.html").render(**context, charts={})


# ---------------------------------------------------------------------------------------------
# The portfolio report adds up


def pounds(text: str) -> int:
    """A printed figure back to a number: '£(1,234)' is -1234."""
    return int(text.strip("£()").replace(",", "")) * (-1 if "(" in text else 1)


BASELINE_ROW = re.compile(r"Baseline (?:\d{4}/\d{2}|not by \d{4}/\d{2}) \S+ (?:Red|Amber|Green) "
                          r"(£\(?[\d,]+\)?) (£\(?[\d,]+\)?)")


def test_portfolio_figures_are_the_sum_of_the_briefings(hostile_forecast, hostile_pack) -> None:
    out, _ = hostile_pack
    printed = [BASELINE_ROW.search(pdf_text(path)).group(2) for path in sorted((out / "briefings").iterdir())]
    summary = hostile_forecast.summary[hostile_forecast.summary["scenario"] == BASELINE]
    total = summary["horizon_free_reserves"].sum()
    assert sorted(printed) == sorted(money(v) for v in summary["horizon_free_reserves"])
    portfolio = pdf_text(out / "portfolio.pdf")
    assert money(total) in portfolio
    rounding = (len(printed) + 1) / 2  # each printed figure is at most 50p from the figure behind it
    assert abs(sum(pounds(p) for p in printed) - pounds(money(total))) <= rounding


def test_real_portfolio_checks_out(forecast) -> None:
    check_portfolio_totals(forecast)


def test_tampered_portfolio_is_refused(forecast) -> None:
    portfolio = forecast.portfolio.copy()
    portfolio.loc[portfolio.index[-1], "free_reserves"] += 1.0
    with pytest.raises(PortfolioMismatch, match="free_reserves"):
        check_portfolio_totals(dataclasses.replace(forecast, portfolio=portfolio))
    counts = forecast.portfolio.copy()
    counts.loc[counts.index[0], "libraries_red"] += 1
    with pytest.raises(PortfolioMismatch, match="libraries_red"):
        portfolio_context(dataclasses.replace(forecast, portfolio=counts), RUN_INFO)
