"""The outputs folder holds one pack from one run: swapped in whole, locked while a run writes it,
never replacing what cml did not write, never inside the inputs.

Runs use ``--no-pdf`` (or a stand-in renderer that writes small files) where the PDFs are not
the point; ``test_pack_kill.py`` kills a real run with its rendering workers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cml.cli import main
from cml.outputs import write_pack
from cml.pack import PACK_README, OutputsFolder, OutputsLocked, OutputsRefused, foreign_files, sha256_of

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
REPO = SHIPPED.parent


def fake_pdfs(forecast, folder: Path, info: dict) -> None:
    """A stand-in for the PDF renderer: a portfolio and two briefings, as files."""
    (folder / "briefings").mkdir()
    for name in ("portfolio.pdf", "briefings/anstey.pdf", "briefings/sapcote.pdf"):
        (folder / name).write_text(f"pdf of run {info['run_at']} {info['inputs_sha256'][:12]}")


@pytest.fixture(autouse=True)
def model_built_once(monkeypatch, scenario_forecast) -> None:
    """The command line as a user runs it, with the model (tested elsewhere) built once: these
    tests are about the folder, not the figures."""
    monkeypatch.setattr("cml.cli.build_forecast", lambda inputs, scenarios, steps, recommendation: scenario_forecast)


def forecast_cli(*args: str):
    return CliRunner().invoke(main, ["forecast", "--inputs", str(SHIPPED), *args])


@pytest.fixture
def full_pack(tmp_path: Path, scenario_forecast, inputs) -> Path:
    """A full pack, PDFs and all (stand-in PDFs), in ``tmp_path/outputs``."""
    out = tmp_path / "outputs"
    write_pack(scenario_forecast, inputs, out, fake_pdfs, inputs_dir=SHIPPED)
    return out


def pack_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_json_lists_every_file_of_the_pack_with_its_checksum(full_pack: Path) -> None:
    run = json.loads((full_pack / "run.json").read_text())
    on_disk = {name for name in pack_files(full_pack) if name != "run.json"}
    assert set(run["files"]) == on_disk >= {"figures.xlsx", "projection.csv", "portfolio.pdf", "briefings/anstey.pdf",
                                           "README.md"}
    assert all(run["files"][name] == sha256_of(full_pack / name) for name in on_disk)
    assert run["pack"] == {"kind": "full", "library": None, "pdfs": True}
    assert not [p for p in full_pack.parent.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def test_the_repository_outputs_readme_is_the_one_every_pack_carries(full_pack: Path) -> None:
    assert (REPO / "outputs" / "README.md").read_text() == PACK_README.read_text()
    assert (full_pack / "README.md").read_text() == PACK_README.read_text()


def test_a_fresh_outputs_folder_holding_only_the_readme_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    shutil.copy(REPO / "outputs" / "README.md", out / "README.md")
    assert foreign_files(out) == []


def test_no_pdf_into_a_full_pack_drops_the_stale_pdfs_and_says_so(full_pack: Path) -> None:
    result = forecast_cli("--outputs", str(full_pack), "--no-pdf")
    assert result.exit_code == 0, result.output
    assert not list(full_pack.rglob("*.pdf"))
    assert "the previous pack's 3 PDF(s) were removed" in result.output
    run = json.loads((full_pack / "run.json").read_text())
    assert run["pack"]["pdfs"] is False and not [n for n in run["files"] if n.endswith(".pdf")]


def test_a_failed_run_leaves_the_old_pack_and_no_staging(full_pack: Path, scenario_forecast, inputs) -> None:
    before = pack_files(full_pack)

    def broken_renderer(forecast, folder, info):
        fake_pdfs(forecast, folder, info)
        raise RuntimeError("a renderer that fails half way")

    with pytest.raises(RuntimeError):
        write_pack(scenario_forecast, inputs, full_pack, broken_renderer, inputs_dir=SHIPPED)
    assert pack_files(full_pack) == before
    assert not [p for p in full_pack.parent.iterdir() if ".staging-" in p.name]


def test_a_killed_runs_staging_folder_goes_at_the_next_run(full_pack: Path) -> None:
    leftover = full_pack.parent / ".outputs.staging-killed"
    (leftover / "briefings").mkdir(parents=True)
    (leftover / "briefings" / "half.pdf").write_text("half a pack")
    assert forecast_cli("--outputs", str(full_pack), "--no-pdf").exit_code == 0
    assert not leftover.exists()


def test_a_second_run_into_a_locked_folder_is_refused_with_exit_code_4(full_pack: Path) -> None:
    before = pack_files(full_pack)
    with OutputsFolder(full_pack, SHIPPED):
        with pytest.raises(OutputsLocked):
            OutputsFolder(full_pack, SHIPPED).__enter__()
        result = forecast_cli("--outputs", str(full_pack), "--no-pdf")
    assert result.exit_code == 4
    assert f"another cml run (pid {os.getpid()}) is writing {full_pack}" in result.output
    assert pack_files(full_pack) == before
    assert forecast_cli("--outputs", str(full_pack), "--no-pdf").exit_code == 0  # the lock went with the run


@pytest.mark.parametrize("where", ["briefings/my notes.docx", "notes.txt"])
def test_a_users_own_file_is_named_and_kept(full_pack: Path, where: str) -> None:
    mine = full_pack / where
    mine.write_text("a council officer's notes")
    before = pack_files(full_pack)
    result = forecast_cli("--outputs", str(full_pack), "--no-pdf")
    assert result.exit_code == 4
    assert "holds files cml did not write" in result.output and f"{where} (not written by cml)" in result.output
    assert pack_files(full_pack) == before


def test_an_edited_workbook_is_not_replaced_without_a_word(full_pack: Path) -> None:
    with (full_pack / "figures.xlsx").open("ab") as handle:
        handle.write(b"an officer's edits")
    result = forecast_cli("--outputs", str(full_pack), "--no-pdf")
    assert result.exit_code == 4 and "figures.xlsx (changed since cml wrote it)" in result.output


def test_a_file_dropped_in_while_the_model_runs_is_kept(full_pack: Path, scenario_forecast, inputs) -> None:
    def renderer_and_a_user(forecast, folder, info):
        fake_pdfs(forecast, folder, info)
        (full_pack / "briefings" / "dropped-in.txt").write_text("saved while cml ran")

    with pytest.raises(OutputsRefused, match="dropped-in.txt"):
        write_pack(scenario_forecast, inputs, full_pack, renderer_and_a_user, inputs_dir=SHIPPED)
    assert (full_pack / "briefings" / "dropped-in.txt").exists() and (full_pack / "portfolio.pdf").exists()


def test_one_librarys_what_if_into_a_full_pack_is_refused(full_pack: Path) -> None:
    before = pack_files(full_pack)
    result = forecast_cli("--outputs", str(full_pack), "--no-pdf", "--library", "anstey",
                          "--set", "levers.cost_change=-0.1")
    assert result.exit_code == 4
    assert "holds the full pack" in result.output and f"--outputs {full_pack}-anstey" in result.output
    assert pack_files(full_pack) == before


def test_a_what_if_goes_to_its_own_folder_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = forecast_cli("--no-pdf", "--library", "Anstey", "--set", "levers.cost_change=-0.1")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "outputs-anstey" / "run.json").read_text())
    assert run["pack"]["kind"] == "one_library" and run["pack"]["library"] == "anstey"
    assert not (tmp_path / "outputs").exists()


def test_a_folder_inside_a_pack_is_refused(full_pack: Path) -> None:
    result = forecast_cli("--outputs", str(full_pack / "anstey-what-if"), "--no-pdf", "--library", "anstey",
                          "--set", "levers.cost_change=-0.1")
    assert result.exit_code == 4 and f"is inside the pack in {full_pack}" in result.output
    assert not (full_pack / "anstey-what-if").exists()


def test_outputs_inside_the_inputs_folder_are_refused(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(SHIPPED, inputs)
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(inputs), "--outputs", str(inputs / "out"), "--no-pdf"])
    assert result.exit_code == 4 and "is inside the inputs folder" in result.output
    assert not (inputs / "out").exists()
    result = CliRunner().invoke(main, ["forecast", "--inputs", str(inputs), "--outputs", str(tmp_path), "--no-pdf"])
    assert result.exit_code == 4 and "inside the outputs folder" in result.output


def test_the_swapped_pack_keeps_the_folders_permissions(full_pack: Path) -> None:
    full_pack.chmod(0o750)
    assert forecast_cli("--outputs", str(full_pack), "--no-pdf").exit_code == 0
    assert full_pack.stat().st_mode & 0o777 == 0o750


def test_a_pack_from_before_manifests_is_still_replaced(full_pack: Path) -> None:
    run = json.loads((full_pack / "run.json").read_text())
    del run["files"], run["pack"]
    (full_pack / "run.json").write_text(json.dumps(run))
    (full_pack / "README.md").unlink()
    assert foreign_files(full_pack) == []
    (full_pack / "briefings" / "notes.txt").write_text("mine")
    assert foreign_files(full_pack) == ["briefings/notes.txt (not written by cml)"]


@pytest.mark.filterwarnings("ignore:HarfBuzz-Subset will be required:DeprecationWarning")
def test_brief_writes_its_own_one_library_pack_and_refuses_the_full_one(tmp_path: Path, full_pack: Path) -> None:
    out = tmp_path / "outputs-anstey"
    result = CliRunner().invoke(main, ["brief", "Anstey", "--inputs", str(SHIPPED), "--outputs", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(pack_files(out)) == ["README.md", "briefings/anstey.pdf", "run.json"]
    assert json.loads((out / "run.json").read_text())["pack"] == {"kind": "one_library", "library": "anstey",
                                                                  "pdfs": True}
    result = CliRunner().invoke(main, ["brief", "anstey", "--inputs", str(SHIPPED), "--outputs", str(full_pack)])
    assert result.exit_code == 4 and "holds the full pack" in result.output


def test_without_an_atomic_exchange_the_pack_is_swapped_by_two_renames(full_pack: Path, monkeypatch) -> None:
    monkeypatch.setattr("cml.pack._exchange", lambda a, b: False)
    result = forecast_cli("--outputs", str(full_pack), "--no-pdf")
    assert result.exit_code == 0, result.output
    assert not list(full_pack.rglob("*.pdf")) and (full_pack / "run.json").exists()
    assert not [p for p in full_pack.parent.iterdir() if ".staging-" in p.name or ".old-" in p.name]
