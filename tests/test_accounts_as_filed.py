"""Issue 12: annual accounts as charities file them. A year end other than 31 March, receipts and
payments (cash) accounts, and lines shown in the restricted column: each read as the accounts
mean it, or refused with the reason, never read as something else."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cml.errors import InputError
from cml.fy import accounting_years, period_ends
from cml.inputs import load_inputs
from cml.projection import fit_for, last_actual_years, library_facts, project_scenario
from cml.render import briefing_context
from cml.returns import instruction_lines
from cml.scenarios import SCENARIO_FILE, load_scenarios

ANSTEY_FIXED_ASSETS = 1860.00  # reserves.csv: fixed_assets of anstey in every year


def edit(folder: Path, name: str, change) -> None:
    frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    change(frame).to_csv(folder / name, index=False)


def set_library(folder: Path, column: str, value: str, library_id: str = "anstey") -> None:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame["library_id"] == library_id, column] = value
        return frame
    edit(folder, "libraries.csv", change)


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_inputs(folder)
    return [str(p) for p in caught.value.problems]


def baseline_run(folder: Path):
    inputs = load_inputs(folder)
    baseline = load_scenarios(folder / SCENARIO_FILE, inputs.assumptions)[0]
    return inputs, project_scenario(inputs, baseline, fit_for(inputs))


# ---------------------------------------------------------------------------------------------
# Year ends


@pytest.mark.parametrize(("year_end", "day", "year"), [
    ("31 March", "2019-03-31", 2018), ("31 March", "2019-04-01", 2019),
    ("5 April", "2019-04-05", 2018), ("5 April", "2019-04-06", 2019),  # 6 April 2018 - 5 April 2019: 360 days in 2018/19
    ("30 April", "2019-04-30", 2018), ("30 April", "2019-05-01", 2019),  # May 2018 - April 2019: 11 months in 2018/19
    ("30 September", "2019-09-30", 2019), ("30 September", "2019-10-01", 2020),  # 182 days in 2018/19, 183 in 2019/20
    ("30 September", "2020-09-30", 2020),  # 183 and 183 (29 February 2020): a tie goes to the year it ends in
    ("31 January", "2020-01-31", 2019), ("31 January", "2020-02-01", 2020),  # February 2019 - January 2020: 10 months in 2019/20
])
def test_a_twelve_month_period_is_the_financial_year_it_mostly_falls_in(year_end, day, year):
    assert accounting_years(pd.to_datetime(pd.Series([day])), pd.Series([year_end])).tolist() == [year]


@pytest.mark.parametrize(("year_end", "made_up_to"), [
    ("31 March", "2024-03-31"), ("5 April", "2024-04-05"), ("30 April", "2024-04-30"),
    ("30 September", "2023-09-30"), ("31 January", "2024-01-31")])
def test_2023_24_ends_on_the_day_the_accounts_are_made_up_to(year_end, made_up_to):
    assert period_ends(2023, pd.Series([year_end])).tolist() == [pd.Timestamp(made_up_to)]


def test_a_30_april_year_end_is_forecast_and_named_on_the_briefing(inputs_dir, scenario_forecast):
    """Anstey (transferred 1 October 2015) with accounts to 30 April: every period keeps its label and
    every grant its year (each 1 October payment falls in May-April), so the figures are the same as
    at 31 March; the lease is counted at 30 April, one month later (30 days / 365.25 less left)."""
    set_library(inputs_dir, "year_end", "30 April")
    inputs, run = baseline_run(inputs_dir)
    facts = library_facts(inputs, run.schedule, last_actual_years(inputs), run.leases)
    anstey = facts.set_index("library_id").loc["anstey"]
    assert anstey["accounts_made_up_to"] == pd.Timestamp("2024-04-30")
    shipped = scenario_forecast.libraries.set_index("library_id").loc["anstey"]
    assert float(shipped["lease_years_remaining"]) - float(anstey["lease_years_remaining"]) == pytest.approx(30 / 365.25, abs=0.051)
    mine = run.projection[run.projection["library_id"] == "anstey"].set_index("year")["free_reserves"]
    baseline = scenario_forecast.projection
    theirs = baseline[(baseline["library_id"] == "anstey") & (baseline["scenario"] == "baseline")].set_index("year")["free_reserves"]
    assert mine.loc[:2023].round(2).equals(theirs.loc[:2023].round(2))


def test_the_briefing_says_which_year_end_the_accounts_use(scenario_forecast):
    from dataclasses import replace
    libraries = scenario_forecast.libraries.copy()
    at = libraries["library_id"] == "anstey"
    libraries.loc[at, "year_end"] = "30 September"
    libraries.loc[at, "accounts_made_up_to"] = pd.Timestamp("2023-09-30")
    forecast = replace(scenario_forecast, libraries=libraries)
    run_info = {"run_at": "2026-12-02T10:00:00+00:00", "version": "x", "inputs_sha256": "0" * 64, "illustrative": True,
                "latest_accounts_year": "2023/24", "accounts_stale": True, "months_since_accounts": 32,
                "latest_accounts_year_end": "2024-03-31"}
    library = briefing_context(forecast, "anstey", run_info)["library"]
    assert (library["year_end"], library["standard_year_end"], library["accounts_made_up_to"]) == (
        "30 September", False, "30 September 2023")
    assert briefing_context(scenario_forecast, "desford", run_info)["library"]["standard_year_end"]


def test_a_year_end_that_moves_the_transfer_year_must_match_the_accounts(inputs_dir):
    """Accounts to 30 September put anstey's transfer (1 October 2015) in the period to 30 September
    2016, 2016/17: its 2015/16 accounts, labelled as for a 31 March year end, are refused."""
    set_library(inputs_dir, "year_end", "30 September")
    assert any(m.startswith("accounts.csv:2: financial_year: 2015/16 is before anstey transferred") for m in problems_of(inputs_dir))


@pytest.mark.parametrize(("value", "reason"), [
    ("29 February", "'29 February': 29 February is not a year end every year; use 28 February"),
    ("31 June", "'31 June' is not a day of the year"),
    ("end of March", "'end of March' is not a year end")])
def test_a_year_end_that_is_not_a_day_every_year_is_refused(inputs_dir, value, reason):
    set_library(inputs_dir, "year_end", value)
    assert any(m.startswith(f"libraries.csv:2: year_end: {reason}") for m in problems_of(inputs_dir))


# ---------------------------------------------------------------------------------------------
# Receipts and payments accounts


def test_receipts_and_payments_funds_hold_no_fixed_assets(inputs_dir):
    set_library(inputs_dir, "accounts_basis", "receipts_and_payments")
    messages = problems_of(inputs_dir)
    assert any(m.startswith("reserves.csv:2: fixed_assets: anstey keeps receipts and payments accounts") for m in messages)


def test_receipts_and_payments_free_reserves_are_unrestricted_cash_less_designated(inputs_dir, scenario_forecast):
    """The same library on a cash basis, its £1,860 of fixed assets no longer in its funds (its
    unrestricted funds are now all cash): free reserves are £1,860 higher in every actual year."""
    set_library(inputs_dir, "accounts_basis", "receipts_and_payments")
    edit(inputs_dir, "reserves.csv", lambda f: f.assign(fixed_assets=f["fixed_assets"].where(f["library_id"] != "anstey", "0.00")))
    inputs, run = baseline_run(inputs_dir)
    mine = run.projection[run.projection["library_id"] == "anstey"].set_index("year")["free_reserves"].loc[:2023]
    baseline = scenario_forecast.projection
    theirs = baseline[(baseline["library_id"] == "anstey") & (baseline["scenario"] == "baseline")].set_index("year")["free_reserves"]
    assert (mine - theirs.loc[:2023]).round(2).unique().tolist() == [ANSTEY_FIXED_ASSETS]


def test_receipts_and_payments_are_refused_over_the_charities_act_limit(inputs_dir):
    set_library(inputs_dir, "accounts_basis", "receipts_and_payments")
    edit(inputs_dir, "reserves.csv", lambda f: f.assign(fixed_assets=f["fixed_assets"].where(f["library_id"] != "anstey", "0.00")))

    def big_donation(frame: pd.DataFrame) -> pd.DataFrame:
        at = (frame["library_id"] == "anstey") & (frame["financial_year"] == "2019/20") & (frame["line"] == "donations")
        frame.loc[at, "amount"] = "260000.00"
        return frame
    edit(inputs_dir, "accounts.csv", big_donation)
    assert any(m.startswith("libraries.csv:2: accounts_basis: anstey's gross income in 2019/20 is £26") and "£250,000" in m
               for m in problems_of(inputs_dir))


def test_the_return_says_which_year_end_and_basis_it_expects():
    text = " ".join(instruction_lines("30 September", True))
    assert "made up to 30 September each year" in text and "receipts and payments (cash)" in text
    assert "accruals" in " ".join(instruction_lines("31 March", False))


# ---------------------------------------------------------------------------------------------
# The restricted column


def restrict_council_grant(frame: pd.DataFrame) -> pd.DataFrame:
    frame["fund"] = ""
    frame.loc[(frame["library_id"] == "anstey") & (frame["line"] == "council_grant"), "fund"] = "restricted"
    return frame


def test_a_council_grant_in_the_restricted_column_is_still_the_librarys_income(inputs_dir, inputs):
    """The grant pays for running the library whichever column it is shown in: the accounts the
    model reads are the same to the penny, and the taper still agrees with them. Restricted funds
    that did not move by the grant are named in a warning (a transfer between funds, or a line in
    the wrong column), not refused."""
    edit(inputs_dir, "accounts.csv", restrict_council_grant)
    loaded = load_inputs(inputs_dir)
    pd.testing.assert_frame_equal(loaded.accounts, inputs.accounts)
    assert any(w.startswith("accounts.csv: anstey 2016/17: restricted funds changed by £0.00") for w in loaded.warnings)


def test_a_line_in_both_columns_is_one_line_of_the_accounts(inputs_dir, inputs):
    def split(frame: pd.DataFrame) -> pd.DataFrame:
        frame["fund"] = ""
        at = (frame["library_id"] == "anstey") & (frame["line"] == "cafe")
        restricted = frame[at].assign(amount=lambda f: (f["amount"].astype(float) * 0.25).round(2).map("{:.2f}".format),
                                      fund="restricted")
        frame.loc[at, "amount"] = (frame.loc[at, "amount"].astype(float) - restricted["amount"].astype(float)).round(2).map("{:.2f}".format)
        return pd.concat([frame, restricted])
    edit(inputs_dir, "accounts.csv", split)
    loaded = load_inputs(inputs_dir)
    mine = loaded.accounts.set_index(["library_id", "year", "line"])["amount"].sort_index()
    theirs = inputs.accounts.set_index(["library_id", "year", "line"])["amount"].sort_index()
    assert (mine - theirs).abs().max() < 0.005


def test_a_line_twice_in_the_same_column_is_a_duplicate(inputs_dir):
    edit(inputs_dir, "accounts.csv", lambda f: pd.concat([f, f.iloc[[0]]]))
    assert any(m.startswith("accounts.csv:") and ": line: duplicate row (library_id=anstey, financial_year=2015/16, "
               "line=council_grant) repeats row 2" in m for m in problems_of(inputs_dir))


def test_a_fund_that_is_neither_column_is_refused(inputs_dir):
    edit(inputs_dir, "accounts.csv", lambda f: f.assign(fund=["endowment"] + [""] * (len(f) - 1)))
    assert any(m.startswith("accounts.csv:2: fund: 'endowment' is not one of unrestricted, restricted") for m in problems_of(inputs_dir))


def test_each_briefing_states_its_own_librarys_accounts():
    """Run facts are the portfolio's; a briefing's accounts year, made-up-to day and age are the
    library's own (a library with accounts to 31 January 2024 is 34 months old on 2 December 2026,
    not the portfolio's latest, 31 March 2024, 32 months)."""
    from cml.render import run_context
    info = {"run_at": "2026-12-02T10:00:00+00:00", "version": "x", "inputs_sha256": "0" * 64, "illustrative": True,
            "latest_accounts_year": "2023/24", "accounts_stale": True, "months_since_accounts": 32,
            "latest_accounts_year_end": "2024-03-31",
            "library_accounts": {"anstey": {"latest_accounts_year": "2023/24", "latest_accounts_year_end": "2024-01-31",
                                            "months_since_accounts": 34, "accounts_stale": True}}}
    own = run_context(info, "anstey")
    assert (own["latest_accounts_year_end"], own["months_since_accounts"]) == ("31 January 2024", 34)
    assert run_context(info)["latest_accounts_year_end"] == "31 March 2024"


def test_run_info_gives_each_library_its_own_accounts_age(inputs_dir):
    from cml.outputs import run_info
    set_library(inputs_dir, "year_end", "30 April")
    info = run_info(load_inputs(inputs_dir))
    assert info["library_accounts"]["anstey"]["latest_accounts_year_end"] == "2024-04-30"
    assert info["library_accounts"]["desford"]["latest_accounts_year_end"] == "2024-03-31"
    assert info["latest_accounts_year_end"] == "2024-04-30"


@pytest.mark.parametrize(("heading", "column"), [("Year_End", "year_end"), ("year end", "year_end"),
                                                 ("Accounts_Basis", "accounts_basis")])
def test_a_heading_spelt_as_a_spreadsheet_might_is_read_as_its_column(inputs_dir, heading, column):
    """Before, 'Year_End' holding 30 September was silently read as 31 March: the heading is now
    read as the column it names, with a warning, so the value takes effect (and is checked)."""
    edit(inputs_dir, "libraries.csv", lambda f: f.rename(columns={column: heading}))
    set_library(inputs_dir, heading, "30 September" if column == "year_end" else "receipts_and_payments")
    messages = problems_of(inputs_dir)
    expected = ("accounts.csv:2: financial_year: 2015/16 is before anstey transferred" if column == "year_end"
                else "reserves.csv:2: fixed_assets: anstey keeps receipts and payments accounts")
    assert any(m.startswith(expected) for m in messages)


def test_a_heading_cml_does_not_read_is_named_in_a_warning(inputs_dir):
    edit(inputs_dir, "accounts.csv", lambda f: f.assign(funds=""))
    warnings = load_inputs(inputs_dir).warnings
    assert any(w.startswith("accounts.csv: column 'funds' is not read (cml reads library_id, financial_year, line, "
                            "amount, fund)") for w in warnings)


def test_a_dotted_thousand_is_refused_not_read_as_pence(inputs_dir):
    """'1.860' in the first year (which has no opening balance to check against) was read as £1.86."""
    def dotted(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[(frame["library_id"] == "anstey") & (frame["line"] == "cafe") & (frame["financial_year"] == "2015/16"),
                  "amount"] = "1.860"
        return frame
    edit(inputs_dir, "accounts.csv", dotted)
    assert any(m.startswith("accounts.csv:3: amount: '1.860' could be thousands with a '.'") for m in problems_of(inputs_dir))
