"""The grant schedule against the seeds' own words, and its apportionment properties."""

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cml.fy import fy_label, fy_of
from cml.schedule import apportion_to_financial_years, grant_schedule, grant_years, last_grant_year, one_off_grants

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
TAPER = pd.read_csv(INPUTS / "taper.csv")


def one_library(transfer: date, costs: float = 10_000.0, year_end: str = "31 March") -> pd.DataFrame:
    return pd.DataFrame({"library_id": ["a"], "transfer_date": [pd.Timestamp(transfer)],
                         "original_running_costs": [costs], "year_end": [year_end]})


def test_shipped_taper_is_100_80_60_40_20_20_20():
    """Seed 000 para 5 and 14 (20 points a year to a floor of 20%) and seed 002 para 21 (seven years)."""
    assert TAPER["percent_of_running_costs"].tolist() == [100, 80, 60, 40, 20, 20, 20]


@pytest.mark.parametrize("month", [4, 7, 10, 12, 2, 3])
def test_2015_16_transfers_receive_last_grant_in_2021_22(month):
    """Seed 000 para 14: 'financial support ... will come to an end in 2021/22' for early transfers."""
    transfer = date(2015 if month >= 4 else 2016, month, 1)
    schedule = grant_schedule(one_library(transfer), TAPER, payment="in_advance")
    assert fy_label(int(last_grant_year(schedule)["a"])) == "2021/22"


def test_grant_years_run_twelve_months_from_transfer():
    years = grant_years(one_library(date(2015, 10, 1)), TAPER)
    assert years["start"].iloc[0] == pd.Timestamp("2015-10-01")
    assert years["end"].iloc[-1] == pd.Timestamp("2022-10-01")
    assert years["award"].tolist() == [10_000, 8_000, 6_000, 4_000, 2_000, 2_000, 2_000]


def test_by_days_splits_a_grant_year_at_1_april():
    """October transfer: 182 of 366 days of grant year 1 fall in 2015/16 (2016 is a leap year)."""
    parts = apportion_to_financial_years(grant_years(one_library(date(2015, 10, 1)), TAPER), "by_days")
    year_one = parts[parts["grant_year"] == 1].set_index("year")["amount"]
    assert year_one[2015] == pytest.approx(10_000 * 183 / 366)
    assert year_one[2016] == pytest.approx(10_000 * 183 / 366)


def test_contingency_grant_is_an_input_row_paying_20_percent():
    """Seed 000 para 18: a one-off grant of 20% of running costs in 2020/21."""
    one_offs = pd.DataFrame({"year": [2020], "line": ["contingency_grant"], "percent_of_running_costs": [20.0]})
    paid = one_off_grants(one_library(date(2016, 1, 1), 8_000.0), one_offs)
    assert paid[["year", "line", "amount"]].values.tolist() == [[2020, "contingency_grant", 1_600.0]]


@settings(max_examples=200, deadline=None)
@given(
    transfer=st.dates(min_value=date(2014, 1, 1), max_value=date(2030, 12, 31)),
    costs=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    payment=st.sampled_from(["in_advance", "by_days"]),
)
def test_apportioned_grant_years_sum_to_the_taper_total(transfer, costs, payment):
    """Whatever the transfer date, the financial-year amounts add back to costs x sum of the taper."""
    schedule = grant_schedule(one_library(transfer, costs), TAPER, payment)
    assert schedule["council_grant"].sum() == pytest.approx(costs * TAPER["percent_of_running_costs"].sum() / 100, rel=1e-9, abs=1e-6)
    assert schedule["year"].is_monotonic_increasing


@settings(max_examples=100, deadline=None)
@given(transfer=st.dates(min_value=date(2014, 1, 1), max_value=date(2030, 12, 31)))
def test_by_days_touches_at_most_eight_financial_years(transfer):
    """Seven twelve-month grant years span seven or eight financial years, never more."""
    schedule = grant_schedule(one_library(transfer), TAPER, "by_days")
    assert len(schedule) in (7, 8)
    assert schedule["year"].diff().dropna().eq(1).all()
    assert schedule["year"].min() == fy_of(transfer)


def test_a_30_september_year_end_takes_each_grant_in_the_period_it_is_paid_in():
    """Transfer 1 October 2015, accounts to 30 September: grant year k is accounting year k exactly.
    The year to 30 September 2016 (182 days in 2015/16, 183 in 2016/17) is reported as 2016/17, so
    the first grant of £10,000 is 2016/17's, whole, whether paid in advance or spread by days; the
    seventh and last is 2022/23's (against 2021/22 for the same library with a 31 March year end)."""
    library = one_library(date(2015, 10, 1), year_end="30 September")
    for payment in ("in_advance", "by_days"):
        schedule = grant_schedule(library, TAPER, payment).set_index("year")["council_grant"]
        assert schedule.to_dict() == pytest.approx({2016: 10_000, 2017: 8_000, 2018: 6_000, 2019: 4_000, 2020: 2_000,
                                                    2021: 2_000, 2022: 2_000})


def test_a_5_april_year_end_splits_by_days_at_6_april():
    """Transfer 1 October 2015, accounts to 5 April: the period 6 April 2015 to 5 April 2016 is
    2015/16 and holds 188 of grant year 1's 366 days (1 October 2015 to 5 April 2016)."""
    parts = apportion_to_financial_years(grant_years(one_library(date(2015, 10, 1), year_end="5 April"), TAPER),
                                         "by_days")
    year_one = parts[parts["grant_year"] == 1].set_index("year")["amount"]
    assert year_one[2015] == pytest.approx(10_000 * 188 / 366)
    assert year_one[2016] == pytest.approx(10_000 * 178 / 366)
