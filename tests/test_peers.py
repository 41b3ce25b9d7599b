"""Among its peers (cml.peers): a hand-worked portfolio of four libraries, a library with one year
of accounts, and the briefing's table against the ``peers`` frame."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from cml.outputs import tables
from cml.peers import FROM_NIL_OR_BELOW, NOT_ENOUGH_YEARS, peer_table
from cml.render import months, pct, peers_context, render_briefing, years_left

pytestmark = pytest.mark.filterwarnings("ignore:HarfBuzz-Subset will be required:DeprecationWarning")

RUN_INFO = {"version": "9.9.9", "run_at": "2025-11-24T07:00:00+00:00", "latest_accounts_year": "2023/24",
            "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 19, "accounts_stale": False,
            "inputs_sha256": "0" * 64, "illustrative": True}
# Per library: free reserves at the end of 2020/21 (None: no accounts then) and of 2023/24, and the
# 2023/24 months of cover, surplus, income, council grant, contingency fund support, self-generated income.
HAND_WORKED = {
    "a": (4000.0, 1000.0, 2.0, -500.0, 10000.0, 2000.0, 500.0, 5000.0),
    "b": (5000.0, 6000.0, 6.0, -1500.0, 8000.0, 0.0, 0.0, 6000.0),
    "c": (10000.0, 10000.0, 10.0, 200.0, 5000.0, 1000.0, 0.0, 1000.0),
    "d": (-2000.0, 7000.0, 14.0, -7000.0, 4000.0, 0.0, 2000.0, 1000.0),
}
ONE_YEAR = {"e": (None, 1000.0, 3.0, -100.0, 1000.0, 0.0, 0.0, 800.0)}
FIGURES = ["months_of_cover", "surplus", "income", "council_grant", "fund_support", "self_generated_income"]


def projection_of(libraries: dict[str, tuple]) -> pd.DataFrame:
    """Baseline actual rows 2020/21 to 2023/24 (only 2023/24 for a library with no 2020/21 figure),
    plus a forecast year and another scenario's row, both with wild figures the peers must ignore."""
    rows = []
    for library_id, (earlier, latest, *figures) in libraries.items():
        now = dict(zip(FIGURES, figures, strict=True))
        wild = {"free_reserves": -1e9, **dict.fromkeys(FIGURES, 1e9)}
        for year in [2023] if earlier is None else [2020, 2021, 2022, 2023]:
            rows.append({"library_id": library_id, "scenario": "baseline", "actual_or_forecast": "actual",
                         "year": year, "free_reserves": {2020: earlier, 2023: latest}.get(year, 99.0),
                         **(now if year == 2023 else dict.fromkeys(FIGURES, 1.0))})
        rows.append({"library_id": library_id, "scenario": "baseline", "actual_or_forecast": "forecast",
                     "year": 2024, **wild})
        rows.append({"library_id": library_id, "scenario": "option_1", "actual_or_forecast": "actual",
                     "year": 2023, **wild})
    frame = pd.DataFrame(rows)
    frame["name"] = frame["library_id"].str.upper()
    frame["financial_year"] = frame["year"].map(lambda y: f"{y}/{(y + 1) % 100:02d}")
    return frame


def test_four_libraries_worked_by_hand():
    """Quartiles are QUARTILE.INC: for n figures, the q-th quartile sits at position q(n-1) of the
    ranked figures (from 0), linear between the two either side.

    Months of reserves 2, 6, 10, 14: lower quartile at position 0.75 = 2 + 0.75 x 4 = 5; median at
    1.5 = 8; upper at 2.25 = 10 + 0.25 x 4 = 11. So a (2) is in the lowest quarter, b (6) below the
    median, c (10) above it, d (14) in the highest quarter.

    Change in free reserves 2020/21 to 2023/24: a 4,000 -> 1,000 = -75%; b 5,000 -> 6,000 = +20%;
    c 10,000 -> 10,000 = 0%; d from -2,000 to 7,000: +£9,000, no percentage of a negative figure,
    so not ranked. Over -75%, 0%, 20%: lower quartile at 0.5 = -37.5%, median 0%, upper at 1.5 = 10%:
    a lowest quarter, c at the median, b highest quarter.

    Years free reserves last: a 1,000 / 500 = 2; b 6,000 / 1,500 = 4; c has a surplus: not depleting
    (infinite); d 7,000 / 7,000 = 1. Ranked 1, 2, 4, infinite: lower quartile 1 + 0.75 x 1 = 1.75,
    median 3, upper 4 + 0.25 x (infinite - 4): not depleting. d lowest quarter, a below the median,
    b above it, c (at the upper quartile, which closes the highest quarter) highest quarter.

    Council share (grant + contingency fund over income): a 2,500 / 10,000 = 25%; b 0%; c 1,000 /
    5,000 = 20%; d 2,000 / 4,000 = 50%. Ranked 0, 20, 25, 50: 15%, 22.5%, 31.25%: b lowest, c below,
    a above, d highest.

    Self-generated share: a 50%, b 75%, c 20%, d 25%. Ranked 20, 25, 50, 75: 23.75%, 37.5%, 56.25%:
    c lowest, d below, a above, b highest.
    """
    table = peer_table(projection_of(HAND_WORKED)).set_index("library_id")
    expected = {
        "months_of_reserves": ([2, 6, 10, 14], (5, 8, 11),
                               ["lowest quarter", "below the median", "above the median", "highest quarter"]),
        "reserves_change_share": ([-0.75, 0.2, 0.0, np.nan], (-0.375, 0.0, 0.1),
                                  ["lowest quarter", "highest quarter", "at the median", FROM_NIL_OR_BELOW]),
        "years_to_depletion": ([2, 4, np.inf, 1], (1.75, 3, np.inf),
                               ["below the median", "above the median", "highest quarter", "lowest quarter"]),
        "council_share": ([0.25, 0, 0.2, 0.5], (0.15, 0.225, 0.3125),
                          ["above the median", "lowest quarter", "below the median", "highest quarter"]),
        "self_generated_share": ([0.5, 0.75, 0.2, 0.25], (0.2375, 0.375, 0.5625),
                                 ["above the median", "highest quarter", "lowest quarter", "below the median"]),
    }
    for indicator, (values, bounds, standings) in expected.items():
        assert table[indicator].tolist() == pytest.approx(values, nan_ok=True), indicator
        for suffix, bound in zip(("_lower_quartile", "_median", "_upper_quartile"), bounds, strict=True):
            assert table[indicator + suffix].tolist() == pytest.approx([bound] * 4), indicator + suffix
        assert table[indicator + "_standing"].tolist() == standings, indicator
    assert table["reserves_change"].tolist() == pytest.approx([-3000, 1000, 0, 9000])
    assert set(table["accounts_to"]) == {"2023/24"} and set(table["reserves_change_from"]) == {"2020/21"}
    assert set(table["libraries"]) == {4} and set(table["scenario"]) == {"baseline"}


def test_a_library_with_one_year_of_accounts_has_not_enough_years_and_leaves_the_change_quartiles_alone():
    """e has only 2023/24: no change to measure, so it is not ranked on it and the change quartiles
    are the four libraries' (-37.5%, 0%, 10%); it counts on every other indicator (months now over
    2, 3, 6, 10, 14: lower quartile 3, the second figure, and e at it is in the lowest quarter)."""
    table = peer_table(projection_of(HAND_WORKED | ONE_YEAR)).set_index("library_id")
    e = table.loc["e"]
    assert np.isnan(e["reserves_change"]) and np.isnan(e["reserves_change_share"])
    assert e["reserves_change_share_standing"] == NOT_ENOUGH_YEARS
    assert [e["reserves_change_share_lower_quartile"], e["reserves_change_share_median"],
            e["reserves_change_share_upper_quartile"]] == pytest.approx([-0.375, 0.0, 0.1])
    assert [e["months_of_reserves_lower_quartile"], e["months_of_reserves_median"]] == pytest.approx([3, 6])
    assert e["months_of_reserves_standing"] == "lowest quarter" and e["libraries"] == 5
    rows = {row["label"]: row for row in peers_context(SimpleNamespace(peers=table.reset_index()), "e")["rows"]}
    change = rows["Change in free reserves since 2020/21"]
    assert (change["value"], change["standing"], change["median"]) == (NOT_ENOUGH_YEARS, "not ranked", "0%")
    d = {row["label"]: row for row in peers_context(SimpleNamespace(peers=table.reset_index()), "d")["rows"]}
    assert d["Change in free reserves since 2020/21"]["value"] == "£9,000"
    assert d["Change in free reserves since 2020/21"]["standing"] == FROM_NIL_OR_BELOW


def peers_row_text(frame: pd.DataFrame, library_id: str, indicator: str, label: str) -> str:
    """One row of the briefing's peers table as the frame's figures print."""
    row = frame.set_index("library_id").loc[library_id]
    show = {"months_of_reserves": months, "years_to_depletion": years_left}.get(indicator, pct)
    cells = [show(row[f"{indicator}{suffix}"]) for suffix in ("", "_lower_quartile", "_median", "_upper_quartile")]
    return " ".join([label, *cells, row[f"{indicator}_standing"]])


def test_briefing_peers_table_shows_the_peers_frame(scenario_forecast, tmp_path: Path):
    """East Goscote's briefing prints each indicator's figure, the quartiles and where it stands,
    exactly as the ``peers`` frame holds them (and the sheet and CSV carry the same frame)."""
    path = render_briefing(scenario_forecast, "east-goscote", tmp_path / "b.pdf", RUN_INFO)
    text = re.sub(r"\s+", " ", " ".join(page.extract_text() for page in PdfReader(path).pages))
    peers = scenario_forecast.peers
    labels = {"months_of_reserves": "Months of reserves (cover)",
              "reserves_change_share": "Change in free reserves since 2020/21",
              "years_to_depletion": "Years left at that year's deficit",
              "council_share": "Share of income from the council",
              "self_generated_share": "Share of income it raised itself"}
    assert "Among its peers" in text and "On the 2023/24 accounts" in text
    assert "Beside all 35 libraries in this forecast" in text
    for indicator, label in labels.items():
        assert peers_row_text(peers, "east-goscote", indicator, label) in text
    assert peers_row_text(peers, "east-goscote", "months_of_reserves", labels["months_of_reserves"]) == (
        "Months of reserves (cover) 25.4 5.1 38.1 60.4 below the median")
    sheet = tables(scenario_forecast)["peers"]
    assert len(sheet) == 35 and not np.isinf(sheet.select_dtypes("number").to_numpy()).any()
