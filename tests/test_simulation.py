"""The simulation stage (cml/simulation.py) on known answers, through the same fund roll-forward.

With no spread every future is the central one; the same seed gives the same futures and
another seed close ones; chunks are independent; exhaustion never un-happens; the fund never
pays more than it holds and pays the neediest first; building failures strike only libraries
that carry their own fabric. Real scenario runs on the shipped inputs, few draws.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cml.fund import CLAIM_ORDER, Flows, FundRules, roll
from cml.projection import fit_for, project_scenario, simulate_run
from cml.scenarios import load_scenarios
from cml.simulation import (PERCENTILES, SimulationSettings, Uncertainty, draw_flows, exhausted_by, failure_cells,
                            library_risk, portfolio_risk, simulate)

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
PENNY = 0.01  # draws are float32: the shipped free reserves (up to ~£75,000) come back within £0.004 of float64
# 4,000 draws: the sd of a difference of two run-out probabilities is at most 0.011; the largest of
# 385 library-years' differences reaches 3 of those by chance (0.0315 was seen), so 4 of them
PROBABILITY_TOLERANCE = 0.045
# The median of 4,000 futures has a standard error of about 0.015 x the interquartile range, so
# two seeds' medians differ by more than 0.1 x IQR (about 5 of those errors combined) by chance
# almost never; £50 covers float32 where the futures barely spread.
MEDIAN_TOLERANCE = (0.1, 50.0)


@pytest.fixture(scope="module")
def scenarios(inputs):
    return {s.name: s for s in load_scenarios(SHIPPED / "scenarios.toml", inputs.assumptions)}


@pytest.fixture(scope="module")
def runs(inputs, scenarios):
    """Scenario runs at the latest cut-off (one fit for all): lazily, by name."""
    fits = fit_for(inputs)
    made = {}

    def run(name: str):
        if name not in made:
            made[name] = project_scenario(inputs, scenarios[name], fits)
        return made[name]
    return run


def central(run) -> np.ndarray:
    """The central projection's free reserves as a (libraries, years) array (NaN in actual years)."""
    ahead = run.projection[run.projection["actual_or_forecast"] == "forecast"]
    table = ahead.pivot(index="library_id", columns="year", values="free_reserves")
    return table.reindex(index=run.flows.libraries, columns=run.flows.years).to_numpy()


def close_risks(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Run-out probabilities within :data:`PROBABILITY_TOLERANCE`, medians within :data:`MEDIAN_TOLERANCE`."""
    assert (a[["library_id", "year"]].to_numpy() == b[["library_id", "year"]].to_numpy()).all()
    assert (a["probability_run_out"] - b["probability_run_out"]).abs().max() <= PROBABILITY_TOLERANCE
    share, floor = MEDIAN_TOLERANCE
    allowed = share * (a["free_reserves_p75"] - a["free_reserves_p25"]) + floor
    assert ((a["free_reserves_p50"] - b["free_reserves_p50"]).abs() <= allowed).all()


# ---------------------------------------------------------------------------------------------
# No spread: every future is the central one


@pytest.mark.parametrize("name", ["baseline", "fund_top_ups", "building_failures", "council_decision"])
def test_with_no_spread_every_draw_is_the_central_path(runs, scenarios, name):
    """shocks=False: 200 draws, each equal to the central projection's free reserves in every
    forecast year to the penny (float32 against float64); so the mean and every percentile are
    the central path, and the run-out probability is 1 exactly where the central path has run
    out, else 0. The scenarios pay each kind of claim: none, top-ups to the floor, building
    failures, income cuts."""
    run = runs(name)
    sim = simulate_run(run, scenarios[name].assumptions, draws=200, shocks=False)
    path = central(run)
    ahead = ~np.isnan(path)
    assert ahead.sum() == 35 * 11  # 2024/25 - 2034/35
    assert np.array_equal(np.isnan(sim.free_reserves[0]), ~ahead)
    assert np.abs(sim.free_reserves[:, ahead] - path[ahead]).max() <= PENNY
    assert np.abs(sim.free_reserves[:, ahead].mean(axis=0, dtype=np.float64) - path[ahead]).max() <= PENNY
    risk = library_risk(sim).set_index(["library_id", "year"])
    expected = pd.Series(path[ahead], index=pd.MultiIndex.from_arrays(
        [np.repeat(run.flows.libraries, ahead.sum(axis=1)), np.tile(run.flows.years, len(path))[ahead.ravel()]]))
    for p in PERCENTILES:
        assert (risk[f"free_reserves_p{p}"] - expected.reindex(risk.index)).abs().max() <= PENNY
    ran_out = np.maximum.accumulate(np.nan_to_num(path) < 0, axis=1)[ahead]
    assert risk["probability_run_out"].to_numpy() == pytest.approx(
        pd.Series(ran_out.astype(float), index=expected.index).reindex(risk.index).to_numpy())
    assert 0 < ran_out.sum() < ahead.sum(), "the shipped central paths should have some libraries run out"


# ---------------------------------------------------------------------------------------------
# Seeds and chunks


def test_the_same_seed_gives_the_same_futures_and_another_seed_close_ones(runs, scenarios):
    """4,000 draws of the baseline: seed 20201 twice gives identical arrays and risk tables;
    seed 7 gives run-out probabilities within 0.045 and medians within a tenth of the interquartile range."""
    assumptions = scenarios["baseline"].assumptions
    first = simulate_run(runs("baseline"), assumptions, draws=4000)
    again = simulate_run(runs("baseline"), assumptions, draws=4000)
    other = simulate_run(runs("baseline"), replace(assumptions, simulation_seed=7), draws=4000)
    assert np.array_equal(first.free_reserves, again.free_reserves, equal_nan=True)
    assert np.array_equal(first.fund_closing, again.fund_closing, equal_nan=True)
    pd.testing.assert_frame_equal(library_risk(first), library_risk(again))
    pd.testing.assert_frame_equal(portfolio_risk(first), portfolio_risk(again))
    assert not np.array_equal(first.free_reserves, other.free_reserves, equal_nan=True)
    close_risks(library_risk(first), library_risk(other))


def test_chunks_are_independent_and_their_size_does_not_move_the_distribution(runs, scenarios):
    """Each chunk draws from its own SeedSequence child, so (i) 2,000 draws in chunks of 1,000 are
    exactly the first 2,000 of 4,000 in chunks of 1,000; (ii) the same (seed, chunk_cells) gives
    identical results. (iii) A different chunk size changes which numbers each draw gets (chunk 0
    of 4,000 draws its arrays 4,000 deep), not the distribution: chunks of 1,000 and of 4,000
    agree to the same tolerance as two seeds."""
    assumptions = scenarios["baseline"].assumptions
    libraries = len(runs("baseline").flows.libraries)
    by_1000 = replace(assumptions, simulation_chunk_cells=1000 * libraries)
    whole = simulate_run(runs("baseline"), by_1000, draws=4000)
    half = simulate_run(runs("baseline"), by_1000, draws=2000)
    assert np.array_equal(half.free_reserves, whole.free_reserves[:2000], equal_nan=True)
    assert np.array_equal(half.fund_closing, whole.fund_closing[:2000], equal_nan=True)
    assert np.array_equal(simulate_run(runs("baseline"), by_1000, draws=4000).free_reserves, whole.free_reserves,
                          equal_nan=True)
    one_chunk = simulate_run(runs("baseline"), replace(assumptions, simulation_chunk_cells=4000 * libraries), draws=4000)
    close_risks(library_risk(whole), library_risk(one_chunk))


# ---------------------------------------------------------------------------------------------
# Exhaustion never un-happens


def test_run_out_probabilities_never_fall_with_the_years(scenario_forecast):
    """Every scenario's risk table (the shipped run): per library, the probability that free
    reserves are exhausted by a year never falls from one year to the next, even where a
    library's reserves recover after going below nil in some futures."""
    risk = scenario_forecast.risk.sort_values(["scenario", "library_id", "year"])
    assert set(risk["scenario"]) == set(scenario_forecast.scenarios["scenario"])
    step = risk.groupby(["scenario", "library_id"])["probability_run_out"].diff().dropna()
    assert len(step) and (step >= 0).all()
    assert risk["probability_run_out"].between(0, 1).all()


def test_exhausted_by_by_hand():
    """One draw, NaN actual years then -1, +5, -2: exhausted from the first year below nil, and
    still so when reserves recover."""
    free = np.array([[[np.nan, -1.0, 5.0, -2.0], [np.nan, 3.0, 0.0, 1.0]]])
    assert exhausted_by(free).tolist() == [[[False, True, True, True], [False, False, False, False]]]


# ---------------------------------------------------------------------------------------------
# The shared fund in every path


DRAWS = 500


def small_flows(rng: np.random.Generator) -> Flows:
    """3 libraries, 2 forecast years (2024/25, 2025/26), £1,000 a month of recurring spending
    each, free reserves £2,000, £6,000, £4,000 at the cut; per draw a surplus of N(0, £3,000) a
    year and, in 70% of library-years, a building failure of £3,000 - £15,000."""
    shape = (DRAWS, 3, 2)
    failures = np.where(rng.random(shape) < 0.7, rng.uniform(3_000, 15_000, shape), 0.0)
    return Flows(libraries=np.array(["a", "b", "c"]), years=np.array([2024, 2025]), ahead=np.ones((3, 2), bool),
                 surplus=rng.normal(0, 3_000, shape), recurring=np.full((1, 3, 2), 12_000.0),
                 needs={"building_failure": failures}, recorded=np.zeros(2),
                 free_at_cut=np.array([2_000.0, 6_000.0, 4_000.0]), cash_less_free=np.zeros(3))


SMALL_FUND = FundRules(opening_year=2024, opening_balance=8_000.0, top_ups={2025: 3_000.0}, cap_per_claim=1e9,
                       cap_per_library=1e9, pays_building_failures=True, pays_reserves_floor=True,
                       reserves_floor_months=3.0, interest_rate=0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fund_never_pays_more_in_a_path_than_it_holds(dtype):
    """A £8,000 fund (+£3,000 in 2025/26) against failures of up to £15,000 in most of 500
    futures, and top-ups to 3 months: per draw-year, all that is paid is at most the opening
    balance plus the year's top-up, the closing balance is never below nil, the ledger adds up
    (closing = opening + top-up - payments) and its payments are the claims paid."""
    flows = small_flows(np.random.default_rng(1))
    rolled = roll(flows, SMALL_FUND, DRAWS, keep=frozenset({"claims", "free_reserves"}), dtype=dtype)
    ledger = rolled.ledger
    paid = sum(rolled.claims[kind]["paid"].sum(axis=1) for kind in CLAIM_ORDER)  # (draws, years)
    tolerance = 1e-6 if dtype == np.float64 else 0.01
    assert (paid <= ledger["opening"] + ledger["top_ups"] + tolerance).all()
    assert (ledger["closing"] >= -tolerance).all()
    assert np.abs(ledger["opening"] + ledger["top_ups"] - ledger["payments"] - ledger["closing"]).max() <= tolerance
    assert np.abs(ledger["payments"] - paid).max() <= tolerance
    assert np.array_equal(ledger["opening"][:, 1], ledger["closing"][:, 0])
    empty = ledger["unmet_fund_empty"] > 0
    assert empty[:, 0].mean() > 0.3 and empty[:, 1].mean() > 0.3, "the fund should run short in many futures"
    for kind in CLAIM_ORDER:
        fields = rolled.claims[kind]
        assert (fields["paid"] <= fields["claimed"] + tolerance).all() and (fields["paid"] >= 0).all()


def test_within_a_path_the_neediest_is_paid_first():
    """Months of cover at the claim: (free reserves at the start of the year + the year's surplus
    + top-ups to date) / £1,000. In every draw-year, a library paid anything for a failure means
    every library with fewer months of cover that also claimed was paid in full."""
    flows = small_flows(np.random.default_rng(2))
    rolled = roll(flows, SMALL_FUND, DRAWS, keep=frozenset({"claims", "free_reserves", "top_ups_to_date"}))
    start = np.stack([np.broadcast_to(flows.free_at_cut, (DRAWS, 3)), rolled.free_reserves[..., 0]], axis=-1)
    topped = np.concatenate([np.zeros((DRAWS, 3, 1)), rolled.top_ups_to_date[..., :1]], axis=-1)
    months = (start + flows.surplus + topped) / 1_000.0
    failure = rolled.claims["building_failure"]
    wanted, paid = failure["claimed"] - failure["unmet_over_caps"], failure["paid"]
    full = paid >= wanted - 1e-9
    checked = 0
    for j in range(3):
        for i in range(3):
            needier = (months[:, i] < months[:, j]) & (wanted[:, i] > 0) & (paid[:, j] > 0)
            checked += int(needier.sum())
            assert full[:, i][needier].all(), f"library {i} was needier than {j} yet not paid in full"
    short = (paid < wanted - 1e-9).any(axis=1)
    assert checked > 100 and short.mean() > 0.3, "the order should matter in many draw-years"


# ---------------------------------------------------------------------------------------------
# Building failures


def failures_only(run, assumptions) -> Uncertainty:
    """No income or cost spread; a building failure every forecast year for whoever carries fabric."""
    settings = SimulationSettings.of(assumptions)
    u = Uncertainty.of(run.fits, run.flows.libraries, settings)
    return replace(u.without_shocks(), failure_probability=1.0)


@pytest.mark.parametrize("name, carriers", [
    ("baseline", "full_repairing"),
    ("option_2", None),  # the council takes fabric repairs: every lease internal repairing
    ("option_3", None),  # the council takes running costs
])
def test_building_failures_hit_only_libraries_that_carry_their_fabric(runs, scenarios, inputs, name, carriers):
    """Probability 1 and no other spread, 200 draws: exactly the libraries on full-repairing leases
    in libraries.csv (17) fall below the central path in the baseline, each in every draw; in
    Options 2 and 3 no library does, and every draw is the central path."""
    run = runs(name)
    assumptions = scenarios[name].assumptions
    sim = simulate(run.flows, run.exposure, run.rules, failures_only(run, assumptions),
                   SimulationSettings.of(assumptions), draws=200)
    below = np.nan_to_num(sim.free_reserves - central(run)[None]) < -1.0  # £1 clear of float32 noise
    fell = set(run.flows.libraries[below.any(axis=(0, 2))])
    lease = inputs.libraries.set_index("library_id")["lease_type"]
    expected = set(lease.index[lease == carriers]) if carriers else set()
    assert fell == expected
    if expected:
        assert len(expected) == 17
        hit = np.isin(run.flows.libraries, sorted(expected))
        assert below[:, hit].any(axis=2).all(), "with probability 1 every carrier falls in every draw"
    else:
        assert np.abs(np.nan_to_num(sim.free_reserves - central(run)[None])).max() <= PENNY


def test_failure_cells_are_independent_at_the_stated_rate_and_at_most_one_a_cell():
    """2,000,000 cells at 4%: the share that fail is 0.04 within 0.0007 (5 standard errors of
    sqrt(0.04 x 0.96 / 2e6) = 0.00014), and so is the share in each half and among even and odd
    cells (within 0.001: 5 standard errors of a half); the indices strictly increase and stay in
    range, so no cell fails twice; a failure in a cell does not make one in the next likelier
    (the share of failed cells followed by a failure is 0.04 within 0.0035, 5 standard errors of
    about 80,000)."""
    cells, p = 2_000_000, 0.04
    failed = failure_cells(np.random.default_rng(5), cells, p)
    assert (np.diff(failed) > 0).all() and failed.min() >= 0 and failed.max() < cells
    hit = np.zeros(cells, bool)
    hit[failed] = True
    assert abs(hit.mean() - p) <= 0.0007
    for part in (hit[: cells // 2], hit[cells // 2:], hit[::2], hit[1::2]):
        assert abs(part.mean() - p) <= 0.001
    assert abs(hit[1:][hit[:-1]].mean() - p) <= 0.0035


def test_simulated_building_failures_strike_each_library_year_at_the_stated_rate(runs, scenarios):
    """The baseline's futures with building failures only, at the shipped 4% a year, 2,000 draws:
    the share of the 17 carriers' forecast library-years (374,000 in all) whose surplus falls
    below the central path is 0.04 within 0.0016 (5 standard errors), within 0.0066 for each
    carrier (22,000 cells) and 0.0053 for each year (34,000 cells), 5 standard errors again; and no
    other library-year moves."""
    run, assumptions = runs("baseline"), scenarios["baseline"].assumptions
    u = replace(failures_only(run, assumptions), failure_probability=assumptions.simulation_building_failure_probability)
    assert u.failure_probability == 0.04
    flows = draw_flows(np.random.default_rng(11), 2000, run.flows, run.exposure, u, run.rules.pays_building_failures)
    fell = flows.surplus - run.flows.surplus < -1.0  # £1 clear of float32 noise
    carriers = run.exposure.carries_fabric
    ahead = np.broadcast_to(run.flows.ahead, fell.shape)
    assert carriers.sum() == 17 and not fell[:, ~carriers].any() and not fell[~ahead].any()
    cells = fell[:, carriers][:, :, run.flows.ahead.any(axis=0)]
    assert cells.size == 2000 * 17 * 11
    assert abs(cells.mean() - 0.04) <= 0.0016
    assert np.abs(cells.mean(axis=(0, 2)) - 0.04).max() <= 0.0066
    assert np.abs(cells.mean(axis=(0, 1)) - 0.04).max() <= 0.0053
