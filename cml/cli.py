"""The ``cml`` command: a thin skin over the pipeline stages.

Each command loads the inputs, calls the library and reports. A user's mistake is printed as
``file:row: column: reason`` lines with exit code 1, never as a traceback.
"""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click

from cml import __version__
from cml.checks import ModelCheckFailed
from cml.errors import InputError, Problem, summarise
from cml.inputs import Inputs, load_inputs
from cml.outputs import run_info, write_pack
from cml.projection import build_forecast
from cml.render import briefing_path, render_briefing, render_pack
from cml.returns import write_template
from cml.scenarios import (
    BASELINE,
    SCENARIO_FILE,
    WHAT_IF,
    Scenario,
    check_scenarios_against_inputs,
    load_scenarios,
    parse_overrides,
    scenario_file_problems,
)

DEFAULT_INPUTS = Path("inputs")
DEFAULT_OUTPUTS = Path("outputs")


def inputs_option(command):
    """``--inputs DIR`` shared by every command that reads inputs."""
    return click.option(
        "--inputs", "inputs_dir", type=click.Path(path_type=Path), default=DEFAULT_INPUTS, show_default=True,
        help="Folder holding libraries.csv, accounts.csv, reserves.csv, taper.csv, assumptions.toml ...",
    )(command)


def load_run(inputs_dir: Path, scenario_names: tuple[str, ...], library_id: str | None,
             settings: tuple[str, ...], library_label: str = "--library") -> tuple[Inputs, list[Scenario]]:
    """Inputs and the scenarios to run (a subset when asked).

    Every library is always projected, because the contingency fund is one pool: one library's
    figures depend on what the others claim. ``library_id`` only aims a what-if's levers at that
    library (unless ``--set levers.libraries=[...]`` says otherwise).
    """
    inputs = load_inputs(inputs_dir)
    click.echo("".join(f"warning: {warning}\n" for warning in inputs.warnings), err=True, nl=False)
    if library_id is not None and library_id not in set(inputs.libraries["library_id"]):
        raise InputError([Problem(library_label, None, library_id, "is not a library_id in libraries.csv")])
    overrides = parse_overrides(settings)
    if library_id is not None and overrides:
        overrides.setdefault("levers.libraries", [library_id])
    scenarios = load_scenarios(inputs_dir / SCENARIO_FILE, inputs.assumptions, overrides)
    known = [s.name for s in scenarios]
    unknown = [n for n in scenario_names if n not in known]
    if unknown:
        raise InputError([Problem("--scenario", None, n, f"no such scenario; choose from {', '.join(known)}") for n in unknown])
    if scenario_names:
        scenarios = [s for s in scenarios if s.name in {BASELINE, WHAT_IF, *scenario_names}]
    check_scenarios_against_inputs(scenarios, inputs)
    return inputs, scenarios


def pdf_writer(library_id: str | None):
    """The whole pack (progress bar on a terminal), or one library's briefing for a trustee's run."""
    if library_id is None:
        return lambda forecast, folder, info: render_pack(forecast, folder, info, progress=sys.stdout.isatty())

    def one_briefing(forecast, folder: Path, info: dict) -> None:
        (folder / "briefings").mkdir()
        render_briefing(forecast, library_id, briefing_path(folder / "briefings", library_id), info)

    return one_briefing


def reports_input_errors(command):
    """Turn :class:`InputError` into located messages on stderr and exit code 1.

    A failed reconciliation check is not the user's mistake, but they still get a sentence,
    not a traceback, and exit code 2.
    """

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as err:
            click.echo("\n".join(summarise(err.problems)), err=True)
            click.echo(f"{len(err.problems)} problem(s) found; nothing was written.", err=True)
            sys.exit(1)
        except OSError as err:
            click.echo(f"Cannot read or write {err.filename or 'a file'}: {err.strerror or err}. Nothing was changed.", err=True)
            sys.exit(1)
        except ModelCheckFailed as err:
            click.echo(f"A reconciliation check failed, so nothing was written: {err}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cml")
def main() -> None:
    """Forecast the reserves of Community Managed Libraries and write the briefing pack.

    Example:

        cml forecast --inputs inputs --outputs outputs
    """


@main.command()
@inputs_option
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUTS,
              show_default=True, help="Folder the pack is written to (previous pack replaced only on success).")
@click.option("--scenario", "scenario_names", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable; the baseline always runs). Default: all. See `cml scenarios`.")
@click.option("--library", "library_id", default=None, metavar="ID",
              help="A trustee's run: the --set levers apply to this library and only its briefing is written.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A trustee's what-if: adds scenario 'what_if' = baseline with these settings, e.g. levers.cost_change=-0.1")
@click.option("--no-pdf", is_flag=True, help="Skip the PDF briefings (CSV, Excel and run.json only).")
@reports_input_errors
def forecast(inputs_dir: Path, outputs_dir: Path, scenario_names: tuple[str, ...], library_id: str | None,
             settings: tuple[str, ...], no_pdf: bool) -> None:
    """Project every library's reserves to the horizon under each scenario and write the pack.

    Writes briefings/*.pdf, portfolio.pdf, projection.csv, portfolio.csv, summary.csv,
    options.csv, scenarios.csv, fund.csv, figures.xlsx and run.json.

    Examples:

        cml forecast --inputs inputs --outputs outputs

        cml forecast --library anstey --set levers.cost_change=-0.1 --set levers.one_off_cost=8000 \\
            --set 'levers.one_off_year="2026/27"' --outputs outputs/anstey-what-if
    """
    inputs, scenarios = load_run(inputs_dir, scenario_names, library_id, settings)
    result = build_forecast(inputs, scenarios)
    write_pack(result, inputs, outputs_dir, None if no_pdf else pdf_writer(library_id))
    latest = result.portfolio[result.portfolio["scenario"] == BASELINE].iloc[-1]
    click.echo(
        f"{len(inputs.libraries)} libraries, {len(scenarios)} scenarios, projected to {latest['financial_year']}; "
        f"baseline: {int(latest['libraries_red'])} Red, {int(latest['libraries_amber'])} Amber at the horizon. "
        f"Pack written to {outputs_dir}/"
        + (" (ILLUSTRATIVE DATA)" if inputs.illustrative else "")
    )


@main.command()
@click.argument("library_id")
@inputs_option
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUTS,
              show_default=True, help="The briefing is written to OUTPUTS/briefings/.")
@reports_input_errors
def brief(library_id: str, inputs_dir: Path, outputs_dir: Path) -> None:
    """Write one library's PDF briefing (every scenario side by side) into OUTPUTS/briefings/.

    Every library is still projected, as the contingency fund is shared.

    Example:

        cml brief anstey --outputs outputs
    """
    inputs, scenarios = load_run(inputs_dir, (), library_id, (), library_label="LIBRARY_ID")
    result = build_forecast(inputs, scenarios)
    folder = outputs_dir / "briefings"
    folder.mkdir(parents=True, exist_ok=True)
    path = render_briefing(result, library_id, briefing_path(folder, library_id), run_info(inputs))
    click.echo(f"Briefing written to {path}")


@main.command("scenarios")
@inputs_option
@reports_input_errors
def list_scenarios(inputs_dir: Path) -> None:
    """List the scenarios in scenarios.toml with what each one changes.

    Example:

        cml scenarios --inputs inputs
    """
    _, scenarios = load_run(inputs_dir, (), None, ())
    for scenario in scenarios:
        parent = scenario.settings.get("inherits")
        click.echo(f"{scenario.name}{f' (from {parent})' if parent else ''}: {scenario.description}")


@main.command()
@inputs_option
@reports_input_errors
def validate(inputs_dir: Path) -> None:
    """Check every input file, scenarios.toml included, and report all problems; write nothing.

    Example:

        cml validate --inputs inputs
    """
    try:
        inputs, scenarios = load_run(inputs_dir, (), None, ())
    except InputError as err:  # every problem at once: scenarios.toml's too, not after the CSVs are fixed
        raise InputError(list(dict.fromkeys(err.problems + scenario_file_problems(inputs_dir)))) from None
    click.echo(f"{inputs_dir}/: {len(inputs.libraries)} libraries, {len(inputs.accounts)} account rows, "
               f"{len(scenarios)} scenarios: no problems found.")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--library", "library_id", required=True, help="The library_id the return is for.")
@click.option("--force", is_flag=True, help="Replace FILE if it already exists.")
@inputs_option
@reports_input_errors
def template(path: Path, library_id: str, force: bool, inputs_dir: Path) -> None:
    """Write a blank annual return workbook (FILE.xlsx) for a library to fill in.

    Put the completed workbook in inputs/returns/ and it is read beside the CSVs.

    Example:

        cml template anstey-2025.xlsx --library anstey
    """
    inputs = load_inputs(inputs_dir)
    if library_id not in set(inputs.libraries["library_id"]):
        raise click.BadParameter(f"'{library_id}' is not a library_id in libraries.csv", param_hint="--library")
    if path.suffix.lower() != ".xlsx":
        raise click.BadParameter(f"'{path}' should end in .xlsx", param_hint="FILE")
    if path.exists() and not force:
        raise click.BadParameter(f"'{path}' already exists (it may hold a filled-in return); use --force to replace it",
                                 param_hint="FILE")
    write_template(path, library_id, inputs.lines)
    click.echo(f"Blank return for {library_id} written to {path}")
