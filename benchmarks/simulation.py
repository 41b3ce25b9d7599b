"""Time and memory of the simulation stage, and of the deterministic model at scale.

Prints figures; it asserts nothing (targets live here, not in timed tests). Each figure is printed
beside the same measurement on the shipped 35 libraries, so the ratio shows how cost grows:

1. the shipped 35 libraries x 10,000 draws, every scenario: the simulation alone
   (``simulate_run`` on each scenario's run, after the model);
2. about 1,000 libraries (the shipped ones 29 times over) x 10,000 draws x 15 forecast years
   (horizon 2038/39), the baseline scenario: time, and peak memory of the simulation (target:
   under 5 s and 4 GiB);
3. about 3,000 libraries (86 copies; ``--copies-3`` to change) x 8 scenarios: ``build_forecast``
   with the simulation cut to one draw (``simulation.draws = 1`` in the copied assumptions). That
   is more than the deterministic model and its checks (target: under 5 s): it also fits the
   pooled models (statsmodels) and solves the fundraising targets by bisection over
   ``targets.draws`` futures (2,000 shipped), which at 350 libraries took half of its time. Each
   stage is timed where ``build_forecast`` calls it and printed beside the total.

Run from the repository root (``--skip 3`` leaves out the slow third part; ``--profile`` profiles
part 2's simulation and prints the top costs):

    python benchmarks/simulation.py
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forecast import INPUTS, replicate  # noqa: E402  (benchmarks/forecast.py)

from cml import projection  # noqa: E402
from cml.inputs import load_inputs  # noqa: E402
from cml.projection import build_forecast, fit_for, project_scenario, scenario_runs, simulate_run  # noqa: E402
from cml.scenarios import load_scenarios  # noqa: E402

DRAWS = 10_000
GIB = 1024 ** 3


def with_setting(text: str, section: str, key: str, value: str) -> str:
    """assumptions.toml ``text`` with ``key`` of ``[section]`` set to ``value`` (a TOML literal):
    by section, because several sections share key names (``targets.draws``, ``simulation.draws``)."""
    start = text.index(f"\n[{section}]\n")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    body, count = re.subn(rf"^{key} = [^#\n]*?(\s*(#|$))", rf"{key} = {value}\1", text[start:end], count=1, flags=re.MULTILINE)
    if not count:
        raise KeyError(f"{section}.{key} is not in assumptions.toml")
    return text[:start] + body + text[end:]


def prepared(folder: Path, copies: int, horizon: str | None = None, draws: int | None = None) -> Path:
    """The shipped inputs ``copies`` times over in ``folder``, with ``forecast.horizon`` and
    ``simulation.draws`` set when given."""
    replicate(copies, folder)
    path = folder / "assumptions.toml"
    text = path.read_text()
    if horizon:
        text = with_setting(text, "forecast", "horizon", f'"{horizon}"')
    if draws:
        text = with_setting(text, "simulation", "draws", str(draws))
    path.write_text(text)
    return folder


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def cpu_timed(function, *args, **kwargs) -> tuple[float, float]:
    """Wall seconds and CPU seconds (every thread of the process) of one call: on a shared machine
    the wall time moves with the other work on it; the CPU time much less."""
    cpu = time.process_time()
    _, seconds = timed(function, *args, **kwargs)
    return seconds, time.process_time() - cpu


def peak_of(function, *args, **kwargs) -> int:
    """Peak bytes traced (numpy arrays included) while ``function`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    function(*args, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def part_1(tmp: Path) -> None:
    print(f"1. simulation alone, {DRAWS:,} draws, every scenario")
    inputs = load_inputs(INPUTS)
    scenarios = load_scenarios(INPUTS / "scenarios.toml", inputs.assumptions)
    runs, model = timed(scenario_runs, inputs, scenarios)
    total = 0.0
    for scenario in scenarios:
        name, run = scenario.name, runs[scenario.name]
        _, seconds = timed(simulate_run, run, scenario.assumptions, draws=DRAWS)
        total += seconds
        print(f"   {name:<24} {len(run.flows.libraries)} libraries x {int(run.flows.ahead.any(axis=0).sum())} "
              f"forecast years: {seconds:.2f} s")
    print(f"   35 libraries, {len(runs)} scenarios: simulation {total:.2f} s  (fits + deterministic runs: {model:.2f} s)")


def simulation_at(folder: Path, copies: int, profile: bool) -> dict:
    inputs = load_inputs(prepared(folder, copies, horizon="2038/39"))
    baseline = load_scenarios(folder / "scenarios.toml", inputs.assumptions)[0]
    run, model = timed(lambda: project_scenario(inputs, baseline, fit_for(inputs)))
    years = int(run.flows.ahead.any(axis=0).sum())
    seconds, cpu = cpu_timed(simulate_run, run, baseline.assumptions, draws=DRAWS)
    peak = peak_of(simulate_run, run, baseline.assumptions, draws=DRAWS)
    figures = {"libraries": len(run.flows.libraries), "years": years, "axis": len(run.flows.years), "seconds": seconds,
               "cpu": cpu, "peak": peak, "model": model, "chunk": max(1, baseline.assumptions.simulation_chunk_cells // len(run.flows.libraries))}
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(simulate_run, run, baseline.assumptions, draws=DRAWS)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
        figures["profile"] = out.getvalue()
    return figures


def part_2(tmp: Path, profile: bool) -> None:
    print(f"2. simulation of the baseline, {DRAWS:,} draws, 15 forecast years (horizon 2038/39)")
    small = simulation_at(tmp / "p2-35", 1, False)
    large = simulation_at(tmp / "p2-1000", 29, profile)
    for f in (small, large):
        print(f"   {f['libraries']:>5} libraries x {f['years']} forecast years ({f['axis']} on the year axis), "
              f"chunks of {f['chunk']:,}: {f['seconds']:.2f} s ({f['cpu']:.1f} s CPU), peak traced memory {f['peak'] / GIB:.2f} GiB"
              f"  (fit + deterministic run: {f['model']:.1f} s)")
    print(f"   ratio: time x{large['seconds'] / small['seconds']:.0f}, memory x{large['peak'] / small['peak']:.0f} "
          f"for libraries x{large['libraries'] / small['libraries']:.0f}; target under 5 s and 4 GiB: "
          f"{'met' if large['seconds'] < 5 and large['peak'] < 4 * GIB else 'NOT met'}")
    if "profile" in large:
        print("   profile of the 1,000-library simulation (top 10 by own time):")
        print("\n".join("   " + line for line in large["profile"].splitlines() if line.strip()))


# What build_forecast spends its time on, each timed where build_forecast calls it (in cml.projection)
STAGES = {"fit_for": "fits (statsmodels)", "scenario_runs": "scenario runs (the deterministic model, fits included)",
          "assert_reconciles": "checks", "simulate_run": "one-draw simulation",
          "fundraising_targets": "fundraising targets (bisection over targets.draws futures)",
          "risk_based_reserves": "risk-based reserves"}


@contextmanager
def stage_clock(seconds: dict[str, float]):
    """While open, each of :data:`STAGES` as ``cml.projection`` calls it adds its time to ``seconds``."""
    def clocked(name: str, function):
        def run(*args, **kwargs):
            result, spent = timed(function, *args, **kwargs)
            seconds[name] = seconds.get(name, 0.0) + spent
            return result
        return run

    originals = {name: getattr(projection, name) for name in STAGES}
    for name, function in originals.items():
        setattr(projection, name, clocked(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(projection, name, function)


def model_at(folder: Path, copies: int) -> dict:
    inputs = load_inputs(prepared(folder, copies, draws=1))
    scenarios = load_scenarios(folder / "scenarios.toml", inputs.assumptions)[:8]
    stages: dict[str, float] = {}
    with stage_clock(stages):
        _, seconds = timed(build_forecast, inputs, scenarios)
    return {"libraries": len(inputs.libraries), "scenarios": [s.name for s in scenarios], "seconds": seconds,
            "stages": stages, "targets_draws": inputs.assumptions.targets_draws}


def part_3(tmp: Path, copies: int) -> None:
    print("3. deterministic model: build_forecast with a one-draw simulation, 8 scenarios")
    small = model_at(tmp / "p3-35", 1)
    print(f"   scenarios: {', '.join(small['scenarios'])}")
    large = model_at(tmp / "p3-large", copies)
    for f in (small, large):
        stages = f["stages"]
        model = stages["scenario_runs"] + stages["assert_reconciles"]
        rest = f["seconds"] - sum(v for k, v in stages.items() if k != "fit_for")
        print(f"   {f['libraries']:>5} libraries: build_forecast {f['seconds']:.1f} s; the deterministic model and its "
              f"checks {model:.1f} s, {model - stages['fit_for']:.1f} s without the fits (target for 3,000: under 5 s)")
        for name, label in STAGES.items():
            extra = f" ({f['targets_draws']:,} draws)" if name == "fundraising_targets" else ""
            print(f"         {stages.get(name, 0.0):6.1f} s  {label}{extra}")
        print(f"         {rest:6.1f} s  the rest (stacking the scenarios, summaries, portfolio tables)")
    print(f"   ratio: time x{large['seconds'] / small['seconds']:.0f} for libraries "
          f"x{large['libraries'] / small['libraries']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip", type=int, action="append", default=[], help="leave out part 1, 2 or 3")
    parser.add_argument("--profile", action="store_true", help="profile part 2's 1,000-library simulation")
    parser.add_argument("--copies-3", type=int, default=86, help="copies of the shipped libraries in part 3 (86: about 3,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for part, run in ((1, lambda: part_1(Path(tmp))), (2, lambda: part_2(Path(tmp), args.profile)),
                          (3, lambda: part_3(Path(tmp), args.copies_3))):
            if part not in args.skip:
                run()
    print(f"peak resident memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
