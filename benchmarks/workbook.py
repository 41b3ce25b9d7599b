"""How long ``figures.xlsx`` takes to write, and how many pages it prints, at 35 and 3,000 libraries.

Run ``python benchmarks/workbook.py`` from the repository root. It builds the shipped forecast
once (every scenario), then replicates the per-library tables (``projection``, ``summary``,
``scenarios``) under new library ids to reach each size; the per-scenario tables (options,
portfolio, fund) stay as they are, as a real 3,000-library run would still have one row per
scenario and year. Running the model itself at 3,000 libraries is ``benchmarks/forecast.py``'s job.

Print pages: each sheet prints one page wide, A4 landscape, with its header rows repeated; a
page holds :data:`cml.workbook.ROWS_PER_PRINTED_PAGE` rows at the default 15 pt row height and
margins, so a sheet's pages are ``ceil(rows / (that - header rows))`` (``printed_pages``). The
Notes sheet counts as one page a row of text (its rows wrap), which overstates it slightly.

Prints figures; asserts nothing. Target (issue 12): 3,000 libraries in well under a minute.

Measured on the 2-core development machine, 2026-12-02, with other engineers' jobs running
(load average about 3): 35 libraries (6,312 rows) 0.57 s, 0.8 MB, 148 printed pages
(Projection 125); 3,000 libraries (516,624 rows) 30.9 s, 69 MB, 11,746 printed pages
(Projection 10,645, Summary and Scenarios 546 each). Writing every cell through xlsxwriter's
own API in ``constant_memory`` mode took 2.6 s and 135 s for the same two sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from cml.inputs import load_inputs
from cml.outputs import run_info, tables, workbook_notes, write_csvs
from cml.projection import build_forecast
from cml.scenarios import load_scenarios
from cml.workbook import write_workbook

INPUTS = Path(__file__).resolve().parents[1] / "inputs"


def replicated(frames: dict[str, pd.DataFrame], libraries: int) -> dict[str, pd.DataFrame]:
    """The tables with every library repeated (new ids ``<id>-1``, ``<id>-2`` ...) to about ``libraries``."""
    out = {}
    for name, frame in frames.items():
        if "library_id" not in frame.columns:
            out[name] = frame
            continue
        ids = list(dict.fromkeys(frame["library_id"]))
        copies = -(-libraries // len(ids))
        parts = [frame if i == 0 else frame.assign(library_id=frame["library_id"] + f"-{i}") for i in range(copies)]
        whole = pd.concat(parts, ignore_index=True)
        keep = set((ids * copies and [i if c == 0 else f"{i}-{c}" for c in range(copies) for i in ids])[:libraries])
        out[name] = whole[whole["library_id"].isin(keep)].reset_index(drop=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[35, 3000])
    args = parser.parse_args()
    inputs = load_inputs(INPUTS)
    forecast = build_forecast(inputs, load_scenarios(INPUTS / "scenarios.toml", inputs.assumptions))
    info = run_info(inputs)
    notes = workbook_notes(forecast, inputs, info, INPUTS)
    base = tables(forecast)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            frames = replicated(base, size)
            libraries = frames["projection"]["library_id"].nunique()
            rows = sum(len(frame) for frame in frames.values())
            path = Path(tmp) / f"figures-{size}.xlsx"
            started = time.perf_counter()
            pages = write_workbook(frames, path, inputs.illustrative, notes)
            written = time.perf_counter() - started
            started = time.perf_counter()
            write_csvs(frames, Path(tmp))
            csvs = time.perf_counter() - started
            print(f"{libraries:>5} libraries, {rows:>8,} rows: figures.xlsx {written:6.2f} s, "
                  f"{path.stat().st_size / 1e6:6.1f} MB, {sum(pages.values()):>6,} printed pages "
                  f"({', '.join(f'{k} {v:,}' for k, v in pages.items())}); CSVs {csvs:5.2f} s")


if __name__ == "__main__":
    main()
