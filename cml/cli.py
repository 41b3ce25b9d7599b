"""The ``cml`` command: a thin skin over the pipeline stages.

Each command loads the inputs, calls the library and reports. A user's mistake is printed as
a sentence (``file:row: column: reason`` for input files), never as a traceback, with one exit
code per kind of problem (README "Exit codes"):

====  ==========================================================================================
0     done
1     an input file is wrong or unreadable (every problem listed, located)
2     the command line is wrong: an unknown option, library, scenario or ``--set`` setting
3     a reconciliation check of the model failed (a bug or inconsistent inputs; nothing written)
4     the outputs folder cannot take the pack: locked by another run, holds files cml did not
      write, inside the inputs folder, or not writable (nothing changed)
====  ==========================================================================================
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from functools import wraps
from pathlib import Path

import click

from cml import __version__
from cml.backtest import describe_cutoffs, run_backtest
from cml.checks import ModelCheckFailed
from cml.errors import InputError, summarise
from cml.inputs import RECEIPTS_AND_PAYMENTS, Inputs, load_inputs
from cml.outputs import write_pack
from cml.pack import FULL, ONE_LIBRARY, OutputsError, OutputsFolder
from cml.projection import Forecast, build_forecast, fit_for, project_scenario
from cml.render import PortfolioMismatch, briefing_path, money, render_briefing, render_pack, slugify
from cml.returns import write_template
from cml.review import compare, load_previous
from cml.scenarios import (
    BASELINE,
    SCENARIO_FILE,
    RECOMMENDATION_FILE,
    SENSITIVITY_FILE,
    WHAT_IF,
    Recommendation,
    Scenario,
    StepRun,
    check_scenarios_against_inputs,
    load_scenarios,
    load_recommendation,
    load_steps,
    parse_overrides,
    scenario_changes,
    scenario_file_problems,
)

DEFAULT_INPUTS = Path("inputs")
DEFAULT_OUTPUTS = Path("outputs")
EXIT_INPUT, EXIT_USAGE, EXIT_CHECK, EXIT_OUTPUTS = 1, 2, 3, 4
COMMAND_LINE_PLACES = ("--", "LIBRARY_ID")  # a Problem located here is the command line's, not a file's
def with_backtest(forecast: Forecast, inputs: Inputs, scenarios: list[Scenario]) -> Forecast:
    """The forecast with the backtest of its status quo against the accounts (``backtest.csv`` and
    the portfolio report's section on how far such forecasts can be trusted)."""
    baseline = next(s for s in scenarios if s.name == BASELINE)
    full_run = forecast.projection[forecast.projection["scenario"] == BASELINE]
    return dataclasses.replace(forecast, backtest=run_backtest(inputs, baseline, full_run))


def inputs_option(command):
    """``--inputs DIR`` shared by every command that reads inputs."""
    return click.option(
        "--inputs", "inputs_dir", type=click.Path(path_type=Path), default=DEFAULT_INPUTS, show_default=True,
        help="Folder holding libraries.csv, accounts.csv, reserves.csv, taper.csv, assumptions.toml ...",
    )(command)


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything a run reads, checked: the inputs, the scenarios to run, the sensitivity steps and
    the officer's recommendation."""

    inputs: Inputs
    scenarios: list[Scenario]
    steps: list[StepRun]
    recommendation: Recommendation | None

    def forecast(self) -> Forecast:
        return build_forecast(self.inputs, self.scenarios, self.steps, self.recommendation)


def load_run(inputs_dir: Path, scenario_names: tuple[str, ...], library_id: str | None,
             settings: tuple[str, ...], library_label: str = "--library") -> Run:
    """Inputs, the scenarios to run (a subset when asked), the sensitivity steps and the recommendation.

    Every library is always projected, because the contingency fund is one pool: one library's
    figures depend on what the others claim. ``library_id`` only aims a what-if's levers at that
    library (unless ``--set levers.libraries=[...]`` says otherwise).
    """
    inputs = load_inputs(inputs_dir)
    click.echo("".join(f"warning: {warning}\n" for warning in inputs.warnings), err=True, nl=False)
    if library_id is not None:
        library_id = match_library(library_id, list(inputs.libraries["library_id"]), library_label)
    overrides = parse_overrides(settings)
    if library_id is not None and overrides:
        overrides.setdefault("levers.libraries", [library_id])
    scenarios = load_scenarios(inputs_dir / SCENARIO_FILE, inputs.assumptions, overrides)
    known = [s.name for s in scenarios]
    unknown = [n for n in scenario_names if n not in known]
    if unknown:
        raise click.BadParameter("; ".join(f"'{n}' is not a scenario in {SCENARIO_FILE}{_nearest(n, known)}; "
                                           f"choose from {', '.join(known)}" for n in unknown), param_hint="--scenario")
    if scenario_names:
        scenarios = [s for s in scenarios if s.name in {BASELINE, WHAT_IF, *scenario_names}]
    steps = load_steps(inputs_dir / SENSITIVITY_FILE, next(s for s in scenarios if s.name == BASELINE))
    check_scenarios_against_inputs(scenarios, inputs)
    check_scenarios_against_inputs([step.scenario for step in steps], inputs, SENSITIVITY_FILE)
    recommendation = load_recommendation(inputs_dir / RECOMMENDATION_FILE, scenarios)
    return Run(inputs, scenarios, steps, recommendation)


def _nearest(given: str, known: list[str]) -> str:
    close = difflib.get_close_matches(given.lower(), known, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def match_library(given: str, known: list[str], label: str = "--library") -> str:
    """The library id ``given`` names, whatever its case; an unknown one is a usage error that
    lists the nearest ids.

    >>> match_library("Anstey", ["anstey", "sapcote"])
    'anstey'
    """
    by_lower = {library_id.lower(): library_id for library_id in known}
    if given.strip().lower() in by_lower:
        return by_lower[given.strip().lower()]
    raise click.BadParameter(f"'{given}' is not a library_id in libraries.csv{_nearest(given, known)}",
                             param_hint=label)


def outputs_folder(outputs_dir: Path | None, library_id: str | None) -> Path:
    """``--outputs`` as given; by default ``outputs``, or ``outputs-<library>`` for one library's pack."""
    if outputs_dir is not None:
        return outputs_dir
    return DEFAULT_OUTPUTS if library_id is None else Path(f"{DEFAULT_OUTPUTS}-{slugify(library_id)}")


def pdf_writer(library_id: str | None):
    """The whole pack (progress bar on a terminal), or one library's briefing for a trustee's run."""
    if library_id is None:
        return lambda forecast, folder, info: render_pack(forecast, folder, info, progress=sys.stdout.isatty())

    def one_briefing(forecast, folder: Path, info: dict) -> None:
        (folder / "briefings").mkdir()
        render_briefing(forecast, library_id, briefing_path(folder / "briefings", library_id), info)

    return one_briefing


def reports_input_errors(command):
    """Turn the problems a user can meet into sentences on stderr and the README's exit codes:
    1 an input file, 2 the command line (``--set``), 3 a failed model check, 4 the outputs folder."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as err:
            click.echo("\n".join(summarise(err.problems)), err=True)
            click.echo(f"{len(err.problems)} problem(s) found; nothing was written.", err=True)
            on_command_line = all(problem.file.startswith(COMMAND_LINE_PLACES) for problem in err.problems)
            sys.exit(EXIT_USAGE if on_command_line else EXIT_INPUT)
        except OutputsError as err:
            click.echo(f"Outputs folder refused: {err}", err=True)
            sys.exit(EXIT_OUTPUTS)
        except OSError as err:
            click.echo(f"Cannot read or write {err.filename or 'a file'}: {err.strerror or err}. Nothing was changed.", err=True)
            sys.exit(EXIT_INPUT)
        except (ModelCheckFailed, PortfolioMismatch) as err:
            click.echo(f"A reconciliation check failed, so nothing was written: {err}", err=True)
            sys.exit(EXIT_CHECK)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cml")
def main() -> None:
    """Forecast the reserves of Community Managed Libraries and write the briefing pack.

    Exit codes: 0 done, 1 input files wrong, 2 command line wrong, 3 a model check failed,
    4 outputs folder locked, refused or unwritable.

    Example:

    \b
        cml forecast --inputs inputs --outputs outputs
    """


OUTPUTS_HELP = ("Folder the pack is written to, replaced whole only on success. "
                "[default: outputs; outputs-<library> with --library]")


@main.command()
@inputs_option
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=Path), default=None, help=OUTPUTS_HELP)
@click.option("--scenario", "scenario_names", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable; the baseline always runs). Default: all. See `cml scenarios`.")
@click.option("--library", "library_id", default=None, metavar="ID",
              help="A trustee's run: the --set levers apply to this library and only its briefing is written, "
                   "into its own folder (never into a full pack).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A trustee's what-if: adds scenario 'what_if' = baseline with these settings, e.g. levers.cost_change=-0.1")
@click.option("--no-pdf", is_flag=True, help="Skip the PDFs (CSV, Excel and run.json only); the previous pack's PDFs go.")
@click.option("--previous", "previous_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="An earlier pack (its run.json and CSVs) to compare with: review.csv and a page in each briefing "
                   "on what changed since that review. It may be the outputs folder itself (read before it is replaced).")
@reports_input_errors
def forecast(inputs_dir: Path, outputs_dir: Path | None, scenario_names: tuple[str, ...], library_id: str | None,
             settings: tuple[str, ...], no_pdf: bool, previous_dir: Path | None) -> None:
    """Project every library's reserves to the horizon under each scenario and write the pack.

    Writes briefings/*.pdf, portfolio.pdf, projection.csv, portfolio.csv, summary.csv,
    options.csv, scenarios.csv, fund.csv, fund_ledger.csv, leases.csv, backtest.csv,
    figures.xlsx, README.md and run.json, swapped in as one pack.

    Examples:

    \b
        cml forecast --inputs inputs --outputs outputs
        cml forecast --scenario option_1 --no-pdf
        cml forecast --previous last-year-pack --outputs outputs
        cml forecast --library anstey --set levers.cost_change=-0.1 --set levers.one_off_cost=8000 \\
            --set 'levers.one_off_year="2026/27"' --outputs what-if-anstey
    """
    run = load_run(inputs_dir, scenario_names, library_id, settings)
    inputs, scenarios = run.inputs, run.scenarios
    previous = None if previous_dir is None else load_previous(previous_dir)
    if library_id is not None:
        library_id = match_library(library_id, list(inputs.libraries["library_id"]))
    out = outputs_folder(outputs_dir, library_id)
    with OutputsFolder(out, inputs_dir, ONE_LIBRARY if library_id else FULL, library_id) as folder:
        result = run.forecast()
        if library_id is None:
            result = with_backtest(result, inputs, scenarios)
        if previous is not None:
            result = dataclasses.replace(result, review=compare(previous, result.projection, result.summary, result.risk,
                                                                inputs.checksums, inputs.assumptions.raw))
        written = write_pack(result, inputs, out, None if no_pdf else pdf_writer(library_id),
                             folder=folder, inputs_dir=inputs_dir)
    latest = result.portfolio[result.portfolio["scenario"] == BASELINE].iloc[-1]
    click.echo(
        f"{len(inputs.libraries)} libraries, {len(scenarios)} scenarios, projected to {latest['financial_year']}; "
        f"baseline: {int(latest['libraries_red'])} Red, {int(latest['libraries_amber'])} Amber at the horizon. "
        f"Pack written to {out}/"
        + (" (ILLUSTRATIVE DATA)" if inputs.illustrative else "")
    )
    if written.dropped_pdfs:
        click.echo(f"No PDFs this run (--no-pdf): the previous pack's {len(written.dropped_pdfs)} PDF(s) were removed, "
                   "as their footers named another run.")


@main.command()
@click.argument("library_id")
@inputs_option
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for this one-library pack (briefings/<library>.pdf and run.json). "
                   "[default: outputs-<library>]")
@reports_input_errors
def brief(library_id: str, inputs_dir: Path, outputs_dir: Path | None) -> None:
    """Write one library's PDF briefing (every scenario side by side) as its own small pack.

    Every library is still projected, as the contingency fund is shared. The briefing goes into
    its own folder, never beside another run's portfolio report.

    Example:

    \b
        cml brief anstey --outputs outputs-anstey
    """
    run = load_run(inputs_dir, (), library_id, (), library_label="LIBRARY_ID")
    inputs = run.inputs
    library_id = match_library(library_id, list(inputs.libraries["library_id"]), "LIBRARY_ID")
    out = outputs_folder(outputs_dir, library_id)
    with OutputsFolder(out, inputs_dir, ONE_LIBRARY, library_id) as folder:
        result = run.forecast()
        write_pack(result, inputs, out, pdf_writer(library_id), folder=folder, inputs_dir=inputs_dir, figures=False)
    click.echo(f"Briefing written to {briefing_path(out / 'briefings', library_id)}")


@main.command("scenarios")
@inputs_option
@reports_input_errors
def list_scenarios(inputs_dir: Path) -> None:
    """List the scenarios in scenarios.toml with what each one changes from the one it inherits.

    Example:

    \b
        cml scenarios --inputs inputs
    """
    scenarios = load_run(inputs_dir, (), None, ()).scenarios
    by_name = {scenario.name: scenario for scenario in scenarios}
    for scenario in scenarios:
        parent = scenario.settings.get("inherits")
        click.echo(f"{scenario.name}{f' (from {parent})' if parent else ''}: {scenario.description}")
        changes = scenario_changes(scenario, by_name.get(parent))
        if parent and not changes:
            click.echo(f"    same settings as {parent}")
        for change in changes:
            click.echo(f"    {change}")


@main.command("backtest")
@inputs_option
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None,
              help="Also write every forecast-against-actual pair to this CSV file.")
@reports_input_errors
def backtest_command(inputs_dir: Path, csv_path: Path | None) -> None:
    """Score the status quo forecast against the accounts: re-run from every past cut-off, with
    the naive forecasts beside it (the same figures as backtest.csv and the portfolio report).

    Example:

    \b
        cml backtest --inputs inputs --csv /tmp/backtest.csv
    """
    run = load_run(inputs_dir, (BASELINE,), None, ())
    inputs, scenarios = run.inputs, run.scenarios
    baseline = next(s for s in scenarios if s.name == BASELINE)
    at_cut = dataclasses.replace(inputs, assumptions=baseline.assumptions)
    full_run = project_scenario(at_cut, baseline, fit_for(at_cut)).projection
    result = run_backtest(inputs, baseline, full_run)
    if inputs.illustrative:
        click.echo("ILLUSTRATIVE DATA: these scores are of made-up accounts.")
    click.echo(f"Cut-offs {describe_cutoffs(result.rows)}; free reserves per library, forecasts whose years ahead "
               "do not include the Covid closures.")
    click.echo(f"{'years':>5} {'pairs':>5} {'cml error':>10} {'flat':>10} {'trend':>10} {'cml bias':>10} "
               f"{'in 50%':>7} {'in 90%':>7} {'CRPS':>10}")
    scores = result.scores[~result.scores["through_covid"]]
    for horizon, part in scores.groupby("horizon"):
        by = part.set_index("method")
        ours = by.loc["cml"]
        click.echo(f"{int(horizon):>5} {int(ours['pairs']):>5} {money(ours['mean_absolute_error']):>10} "
                   f"{money(by.loc['flat', 'mean_absolute_error']):>10} "
                   f"{money(by.loc['three_year_trend', 'mean_absolute_error']):>10} {money(ours['bias']):>10} "
                   f"{ours['covered_50']:>7.0%} {ours['covered_90']:>7.0%} {money(ours['crps']):>10}")
    if csv_path is not None:
        result.rows.to_csv(csv_path, index=False)
        click.echo(f"Wrote {len(result.rows)} rows to {csv_path}")


@main.command()
@inputs_option
@reports_input_errors
def validate(inputs_dir: Path) -> None:
    """Check every input file, scenarios.toml included, and report all problems; write nothing.

    Example:

    \b
        cml validate --inputs inputs
    """
    try:
        run = load_run(inputs_dir, (), None, ())
    except InputError as err:  # every problem at once: scenarios.toml's too, not after the CSVs are fixed
        raise InputError(list(dict.fromkeys(err.problems + scenario_file_problems(inputs_dir)))) from None
    click.echo(f"{inputs_dir}/: {len(run.inputs.libraries)} libraries, {len(run.inputs.accounts)} account rows, "
               f"{len(run.scenarios)} scenarios, {len({s.step.name for s in run.steps})} sensitivity steps: no problems found.")


def template_years(inputs: Inputs, library_id: str) -> list[str]:
    """The financial years a return is asked for: those after the library's latest accounts, up
    to the year before the current one (a year's accounts come in after it ends), at least one."""
    from datetime import date

    from cml.fy import fy_label

    accounts = inputs.accounts[inputs.accounts["library_id"] == library_id]
    latest = int(accounts["year"].max()) if len(accounts) else int(inputs.accounts["year"].max())
    today = date.today()
    last_ended = (today.year if today.month >= 4 else today.year - 1) - 1
    return [fy_label(year) for year in range(latest + 1, max(latest + 1, last_ended) + 1)]


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

    \b
        cml template anstey-2025.xlsx --library anstey
    """
    inputs = load_inputs(inputs_dir)
    library_id = match_library(library_id, list(inputs.libraries["library_id"]))
    if path.suffix.lower() != ".xlsx":
        raise click.BadParameter(f"'{path}' should end in .xlsx", param_hint="FILE")
    if path.exists() and not force:
        raise click.BadParameter(f"'{path}' already exists (it may hold a filled-in return); use --force to replace it",
                                 param_hint="FILE")
    facts = inputs.libraries.set_index("library_id").loc[library_id]
    write_template(path, library_id, inputs.lines, years=template_years(inputs, library_id), year_end=facts["year_end"],
                   receipts_and_payments=facts["accounts_basis"] == RECEIPTS_AND_PAYMENTS)
    click.echo(f"Blank return for {library_id} written to {path}")
