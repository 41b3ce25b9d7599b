"""Time and memory of the model (no PDFs): load, every scenario, checks, CSV/Excel outputs.

Prints figures; it asserts nothing (targets live here, not in timed tests). Run:

    python benchmarks/forecast.py            # the shipped 35 libraries
    python benchmarks/forecast.py --copies 10  # the same libraries 10 times over (350)
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from cml.inputs import load_inputs
from cml.outputs import write_pack
from cml.projection import build_forecast
from cml.scenarios import load_scenarios

INPUTS = Path(__file__).resolve().parents[1] / "inputs"


def replicate(copies: int, folder: Path) -> Path:
    """A copy of the shipped inputs with every library repeated ``copies`` times under new ids."""
    shutil.copytree(INPUTS, folder, dirs_exist_ok=True)
    for name in ("libraries.csv", "accounts.csv", "reserves.csv", "trustee_projections.csv", "lease_extensions.csv"):
        frame = pd.read_csv(INPUTS / name, dtype=str, keep_default_na=False)
        parts = [frame.assign(library_id=frame["library_id"] + ("" if i == 0 else f"-{i}")) for i in range(copies)]
        pd.concat(parts).to_csv(folder / name, index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = replicate(args.copies, Path(tmp) / "inputs") if args.copies > 1 else INPUTS
        started = time.perf_counter()
        inputs = load_inputs(folder)
        loaded = time.perf_counter()
        scenarios = load_scenarios(folder / "scenarios.toml", inputs.assumptions)
        forecast = build_forecast(inputs, scenarios)
        built = time.perf_counter()
        write_pack(forecast, inputs, Path(tmp) / "out")
        written = time.perf_counter()
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"libraries: {len(inputs.libraries)}  scenarios: {len(scenarios)}  projection rows: {len(forecast.projection)}")
    print(f"load+validate: {loaded - started:.2f} s  model+checks: {built - loaded:.2f} s  "
          f"CSV+Excel+run.json: {written - built:.2f} s  total: {written - started:.2f} s")
    print(f"peak resident memory of the process: {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
