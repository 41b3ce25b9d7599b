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
from cml.errors import InputError
from cml.inputs import load_inputs
from cml.outputs import write_pack
from cml.projection import build_forecast
from cml.returns import write_template

DEFAULT_INPUTS = Path("inputs")
DEFAULT_OUTPUTS = Path("outputs")


def inputs_option(command):
    """``--inputs DIR`` shared by every command that reads inputs."""
    return click.option(
        "--inputs", "inputs_dir", type=click.Path(path_type=Path), default=DEFAULT_INPUTS, show_default=True,
        help="Folder holding libraries.csv, accounts.csv, reserves.csv, taper.csv, assumptions.toml ...",
    )(command)


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
            for problem in err.problems:
                click.echo(str(problem), err=True)
            click.echo(f"{len(err.problems)} problem(s) found; nothing was written.", err=True)
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
@click.option("--no-pdf", is_flag=True, help="Skip the PDF briefings (CSV, Excel and run.json only).")
@reports_input_errors
def forecast(inputs_dir: Path, outputs_dir: Path, no_pdf: bool) -> None:
    """Project every library's reserves to the horizon and write the pack.

    Writes projection.csv, portfolio.csv, summary.csv, figures.xlsx and run.json.

    Example:

        cml forecast --inputs inputs --outputs outputs
    """
    inputs = load_inputs(inputs_dir)
    result = build_forecast(inputs)
    write_pack(result, inputs, outputs_dir)
    latest = result.portfolio.iloc[-1]
    click.echo(
        f"{len(inputs.libraries)} libraries projected to {latest['financial_year']}; "
        f"{int(latest['libraries_red'])} Red, {int(latest['libraries_amber'])} Amber at the horizon. "
        f"Pack written to {outputs_dir}/"
        + (" (ILLUSTRATIVE DATA)" if inputs.illustrative else "")
    )


@main.command()
@inputs_option
@reports_input_errors
def validate(inputs_dir: Path) -> None:
    """Check every input file and report all problems; write nothing.

    Example:

        cml validate --inputs inputs
    """
    inputs = load_inputs(inputs_dir)
    click.echo(f"{inputs_dir}/: {len(inputs.libraries)} libraries, {len(inputs.accounts)} account rows: no problems found.")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--library", "library_id", required=True, help="The library_id the return is for.")
@inputs_option
@reports_input_errors
def template(path: Path, library_id: str, inputs_dir: Path) -> None:
    """Write a blank annual return workbook (FILE.xlsx) for a library to fill in.

    Put the completed workbook in inputs/returns/ and it is read beside the CSVs.

    Example:

        cml template anstey-2025.xlsx --library anstey
    """
    inputs = load_inputs(inputs_dir)
    if library_id not in set(inputs.libraries["library_id"]):
        raise click.BadParameter(f"'{library_id}' is not a library_id in libraries.csv", param_hint="--library")
    write_template(path, library_id, inputs.lines)
    click.echo(f"Blank return for {library_id} written to {path}")
