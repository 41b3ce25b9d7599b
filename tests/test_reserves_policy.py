"""The reserves requirement from each library's risks (cml.reserves_policy, reserves_risks.csv):
hand-worked scores, nil with no risks and rising with each risk added, the verdict judged at the
forecast's low point, and bad rows named by file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cml.errors import InputError
from cml.inputs import load_inputs
from cml.reserves_policy import lowest_point, reserves_requirement, score_risks, verdict

from tests.conftest import SHIPPED

LIBRARIES = pd.DataFrame({"library_id": ["a", "b"], "lease_type": ["full_repairing", "internal_repairing"]})
LATEST = pd.DataFrame({"library_id": ["a", "a", "a", "b", "b", "b"],
                       "line": ["cafe", "other_grants", "room_hire"] * 2,
                       "group": ["self_generated", "grants", "self_generated"] * 2,
                       "amount": [3000.0, 2000.0, 1000.0] * 2})
RECURRING = pd.Series({"a": 12000.0, "b": 12000.0})
SHORT = pd.Series({"a": True, "b": False})


@pytest.fixture(scope="module")
def shipped_risks() -> pd.DataFrame:
    return load_inputs(SHIPPED).reserves_risks


def test_each_basis_scored_by_hand(shipped_risks):
    """Self-generated income 4,000 (café 3,000 + room hire 1,000), grants 2,000, room hire 1,000,
    recurring spending 12,000 (1,000 a month). Library a (full-repairing, lease due):
    50% x 25% x 4,000 = 500; 50% x 50% x 2,000 = 500; 10% x 100% x 1,000 = 100; 100% x 2 months =
    2,000; 12% x 20,000 = 2,400; 100% x 2,000 fees = 2,000: 7,500. Library b (internal repairing,
    lease not due): no fabric, no fees: 3,100."""
    scored = score_risks(shipped_risks, LIBRARIES, LATEST, RECURRING, SHORT)
    amounts = scored.pivot(index="risk", columns="library_id", values="amount")
    assert amounts["a"].to_dict() == pytest.approx({"building_fabric": 2400.0, "grant_not_renewed": 500.0,
                                                    "lease_renewal": 2000.0, "partner_leaves": 100.0,
                                                    "trading_dip": 500.0, "wind_down": 2000.0})
    assert amounts["a"].sum() == pytest.approx(7500.0)
    assert amounts["b"].sum() == pytest.approx(3100.0)
    assert "building_fabric" not in set(scored.loc[scored["library_id"] == "b", "risk"])


def test_no_risks_need_nothing_and_each_risk_added_raises_the_requirement(shipped_risks):
    now = pd.DataFrame({"financial_year": "2023/24", "reserves_target_now": 3000.0, "policy_months": 3.0,
                        "free_reserves_now": 10000.0}, index=pd.Index(["a", "b"], name="library_id"))
    ahead = pd.DataFrame({"library_id": ["a", "b"], "year": 2024, "free_reserves": [9000.0, 9000.0]})
    shortfall = pd.DataFrame({"shortfall_1_in_10": [0.0, 0.0], "shortfall_year": "2026/27", "lowest_1_in_10": 0.0,
                              "lowest_1_in_10_year": "2026/27"}, index=["a", "b"])
    previous = None
    for count in range(len(shipped_risks) + 1):
        scored = score_risks(shipped_risks.iloc[:count], LIBRARIES, LATEST, RECURRING, SHORT)
        requirement = reserves_requirement(scored, now, ahead, shortfall, 2.0).set_index("library_id")["requirement"]
        if previous is None:
            assert (requirement == 0).all()
        else:
            assert requirement["a"] > previous["a"]  # every shipped risk applies to a, with something at stake
        previous = requirement


def test_far_more_is_judged_at_the_low_point_of_a_bad_future_not_today():
    """Both hold 20,000 now against a requirement of 2,000 and a policy of 3,000. a stays above
    12,000 and in 1 future in 10 falls no lower than 9,000 (more than twice 3,000): far more, and
    9,000 - 3,000 = 6,000 could be spent. b's deficits take it to 1,000 in 2027/28, below the
    requirement from 2026/27: short later, not "far more"."""
    now = pd.DataFrame({"financial_year": "2023/24", "reserves_target_now": 3000.0, "policy_months": 6.0,
                        "free_reserves_now": 20000.0}, index=pd.Index(["a", "b"], name="library_id"))
    ahead = pd.DataFrame({"library_id": ["a"] * 4 + ["b"] * 4, "year": [2024, 2025, 2026, 2027] * 2,
                          "free_reserves": [19000.0, 16000.0, 14000.0, 12500.0, 15000.0, 8000.0, 1500.0, 1000.0]})
    scored = pd.DataFrame({"library_id": ["a", "b"], "amount": [2000.0, 2000.0]})
    shortfall = pd.DataFrame({"shortfall_1_in_10": [1000.0, 1000.0], "shortfall_year": "2026/27",
                              "lowest_1_in_10": [9000.0, -4000.0], "lowest_1_in_10_year": "2027/28"}, index=["a", "b"])
    table = reserves_requirement(scored, now, ahead, shortfall, 2.0).set_index("library_id")
    assert table["verdict"].to_dict() == {"a": "far_more", "b": "short_later"}
    assert table.loc["b", "below_requirement_from"] == "2026/27" and table.loc["b", "lowest_year"] == "2027/28"
    assert table.loc["a", "spare_at_lowest"] == pytest.approx(9000.0 - 3000.0)
    assert lowest_point(ahead, pd.Series({"a": 0.0, "b": 0.0}))["below_requirement_from"].isna().all()


@pytest.mark.parametrize("row, column, reason", [
    ("x,all,income_group,self_generatd,50,25,X,s", "of", "is not the group of any income line"),
    ("x,all,line,roomhire,50,25,X,s", "of", "is not a line in lines.csv"),
    ("x,all,income_group,self_generated,50,0.25e3,X,s", "impact", "is more than 100"),
    ("x,all,spending,,50,240,X,s", "impact", "months of spending is more than 120"),
    ("x,all,fixed,room_hire,50,100,X,s", "of", "leave 'of' blank"),
    ("x,all,guess,,50,100,X,s", "basis", ""),
    ("x,all,fixed,,150,100,X,s", "probability_percent", ""),
])
def test_a_bad_risk_row_is_named_by_file_row_and_column(inputs_dir: Path, row, column, reason):
    path = inputs_dir / "reserves_risks.csv"
    path.write_text(path.read_text(encoding="utf-8") + row + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_inputs(inputs_dir)
    rows = len(path.read_text(encoding="utf-8").splitlines())
    assert any(p.file == "reserves_risks.csv" and p.row == rows and p.column == column and reason in p.reason
               for p in caught.value.problems), caught.value.problems


def test_without_the_file_there_are_no_risks_and_the_requirement_is_nil(inputs_dir: Path):
    (inputs_dir / "reserves_risks.csv").unlink()
    assert load_inputs(inputs_dir).reserves_risks.empty


def test_reserves_that_a_bad_future_would_use_are_not_far_more():
    """Central low point 12,500 (over twice the 3,000 needed), but 2,500 in 1 future in 10: enough,
    not far more."""
    result = verdict(pd.Series([20000.0]), pd.Series([12500.0]), pd.Series([2500.0]), pd.Series([2000.0]),
                     pd.Series([3000.0]), 2.0)
    assert result.tolist() == ["enough"]
