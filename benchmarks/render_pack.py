"""How long the full default pack takes to render, against a floor, on this machine.

Run ``python benchmarks/render_pack.py`` from the repository root. Not a timed test: machines
differ. It prints

* ``pack``: ``render_pack`` end to end on the shipped inputs, as ``cml forecast`` runs it
  (building every context, starting the worker pool, 35 briefings and the portfolio report);
* ``pack (warm pool)`` and ``floor``: the same documents, then the same number of documents
  and pages of plain text, both through one pool that has already started, with the same
  stylesheet, fonts and PDF/UA output. The ratio between them is the cost of charts,
  tables and figures over WeasyPrint's own minimum; the target is at most 1.5;
* the cost of one briefing's two charts drawn as SVG and as PNG at 150 dpi (see
  ``cml/charts.py`` for why SVG).

Targets (issue 5): pack under 15 s on a 2-core machine, within 1.5x of the floor.

Measured on the 2-core development machine (WeasyPrint 70, 8 scenarios, 112 pages): pack
14.3 s end to end, 13.1 s on a warm pool; floor 3.6 s; ratio 3.6. The time target is met,
just; the ratio is not, and cannot be with this floor: a page of plain text costs WeasyPrint
about 0.05 s here (TECH-NOTES expected 0.1 s a page plus 0.4 s a document), while a briefing
costs about 0.6 s: 0.2 s to lay out its ~350 table cells, 0.16 s to subset two font faces,
0.09 s to draw two charts and 0.07 s to paint them. Two measured ways to go faster:

* install libharfbuzz-subset (``apt-get install libharfbuzz-subset0``), which WeasyPrint asks
  for at import: it replaces fontTools subsetting (0.08 s a face a document). Pack 9.8 s,
  floor 1.7 s (the floor gains the most, so the ratio rises to 5.3);
* a single font weight (no bold): pack 12.3 s, ratio 3.1, at a cost to legibility: not taken.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

from pypdf import PdfReader

from cml import __version__
from cml.charts import CHARTS
from cml.inputs import load_inputs
from cml.projection import build_forecast
from cml.render import briefing_context, make_pool, pack_jobs, render_html, render_pack, run_jobs
from cml.scenarios import SCENARIO_FILE, load_scenarios

INPUTS = Path(__file__).resolve().parent.parent / "inputs"
WORDS = ("the", "library", "reserves", "council", "grant", "trustees", "volunteers", "income", "spending",
         "forecast", "year", "café", "room", "hire", "events", "donations", "gift", "aid", "insurance",
         "utilities", "repairs", "cleaning", "stock", "accounts", "charity", "lease", "2024/25", "£12,345",
         "months", "cover")


def forecast_and_run_info() -> tuple:
    """The forecast of the shipped inputs, and run facts as the CLI passes them."""
    inputs = load_inputs(INPUTS)
    forecast = build_forecast(inputs, load_scenarios(INPUTS / SCENARIO_FILE, inputs.assumptions))
    run_info = {"version": __version__, "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "inputs_sha256": inputs.inputs_sha256[:12], "illustrative": inputs.illustrative}
    return forecast, run_info


def pages(path: Path) -> int:
    """Pages in a PDF."""
    return len(PdfReader(path).pages)


def plain_paragraph(seed: int, words: int = 70) -> str:
    """A paragraph of varied words and figures, like a report's prose."""
    return "<p>" + " ".join(WORDS[(seed * 7 + i * i) % len(WORDS)] for i in range(words)) + ".</p>"


def plain_document(page_count: int) -> str:
    """Pages full of plain paragraphs (no tables, no charts), with the pack's language and title."""
    page = "".join(plain_paragraph(seed) for seed in range(9))
    pages = "".join(f'<div style="break-before: page">{page}</div>' if i else page for i in range(page_count))
    return f'<!DOCTYPE html><html lang="en-GB"><head><title>Floor</title></head><body>{pages}</body></html>'


def write_plain(page_count: int, path: Path) -> int:
    """Render a plain document in a worker; return its page count so the caller can check it."""
    render_html(plain_document(page_count), path)
    return pages(path)


def timed(label: str, action) -> tuple[float, object]:
    """Run ``action``; print and return how long it took."""
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    print(f"{label:<28}{seconds:7.2f} s")
    return seconds, result


def warm_up(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker (each loads WeasyPrint, fonts and templates) before timing."""
    wait([pool.submit(os.getpid) for _ in range(workers * 4)])


def chart_formats(forecast, run_info: dict, folder: Path) -> None:
    """Draw one briefing's charts as SVG and as PNG and write each to a PDF, in this process."""
    context = briefing_context(forecast, forecast.libraries["library_id"].iloc[0], run_info)
    for fmt in ("svg", "png"):
        for _ in range(2):  # the first round warms caches; report the second
            start = time.perf_counter()
            markup = "".join(CHARTS[name](data, fmt).markup for name, data in context["chart_data"].items())
            drawn = time.perf_counter() - start
            render_html(f'<html lang="en-GB"><title>Charts</title><body>{markup}</body></html>',
                        folder / f"{fmt}.pdf")
            written = time.perf_counter() - start - drawn
        size = (folder / f"{fmt}.pdf").stat().st_size // 1024
        print(f"one briefing's charts as {fmt}: draw {drawn:.2f} s, write {written:.2f} s, {size} KiB")


def main() -> None:
    """Print the pack time, the floor, their ratio and the page count."""
    forecast, run_info = forecast_and_run_info()
    workers = os.cpu_count() or 1
    documents = len(forecast.libraries) + 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cold, _ = timed("pack (render_pack)", lambda: render_pack(forecast, folder / "cold", run_info))
        with make_pool(workers) as pool:
            warm_up(pool, workers)
            warm, paths = timed("pack (warm pool)",
                                lambda: run_jobs(pack_jobs(forecast, folder / "warm", run_info), pool, documents))
            counts = [pages(path) for path in paths]
            floor, floor_pages = timed("floor (warm pool)", lambda: [
                future.result() for future in [pool.submit(write_plain, n, folder / f"floor-{i}.pdf")
                                               for i, n in enumerate(counts)]])
        assert floor_pages == counts, "the floor must have the same pages as the pack"
        print(f"documents {len(paths)}, pages {sum(counts)}, workers {workers}")
        print(f"ratio pack / floor (warm pool): {warm / floor:.2f} (target <= 1.5)")
        print(f"pack end to end: {cold:.2f} s (target < 15 s)")
        chart_formats(forecast, run_info, folder)


if __name__ == "__main__":
    main()
