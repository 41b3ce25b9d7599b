"""A run killed with SIGKILL while its workers render PDFs: no worker outlives it, the old pack
stays, and the next good run clears the staging folder it left. A real ``cml forecast``
subprocess, PDFs and all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cml.outputs import write_pack

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def descendants(root: int) -> set[int]:
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    parents = {pid: parent_of(pid) for pid in pids}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


COMMAND = [sys.executable, "-c", "from cml.cli import main; main()"]


def cml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300, check=False)


def test_sigkill_leaves_no_worker_and_the_next_run_clears_up(tmp_path: Path, scenario_forecast, inputs) -> None:
    out = tmp_path / "outputs"
    write_pack(scenario_forecast, inputs, out, inputs_dir=SHIPPED)  # the pack the killed run would replace
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    run = subprocess.Popen([*COMMAND, "forecast", "--inputs", str(SHIPPED), "--outputs", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        # rendering workers are the run's grandchildren (children of the forkserver)
        workers = {pid for pid in descendants(run.pid) if parent_of(pid) != run.pid}
        if len(workers) >= 2 and list(tmp_path.glob(".outputs.staging-*/briefings")):
            break
        time.sleep(0.2)
    assert run.poll() is None and workers, "the run ended before its workers could be seen"
    everything = descendants(run.pid)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    gone_by = time.monotonic() + 10
    while time.monotonic() < gone_by and any(alive(pid) for pid in everything):
        time.sleep(0.2)
    assert not [pid for pid in everything if alive(pid)], "processes of the killed run are still running"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert list(tmp_path.glob(".outputs.staging-*")), "the kill came before anything was staged"

    again = cml("forecast", "--inputs", str(SHIPPED), "--outputs", str(out), "--no-pdf")
    assert again.returncode == 0, again.stderr
    assert not list(tmp_path.glob(".outputs.staging-*")) and not list(tmp_path.glob(".outputs.old-*"))
