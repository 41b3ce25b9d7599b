"""Scenarios as data: named sets of settings in ``inputs/scenarios.toml``, each inheriting from another.

The baseline names every setting; any other scenario inherits (from the baseline or another
scenario) and overrides a few. A scenario may also override any ``assumptions.toml`` setting
(e.g. ``forecast.actuals_to`` to re-run the 2020 review). Adding a scenario needs no Python:
this module only knows each setting's type and range, never a scenario's name.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cml.errors import InputError, Problem
from cml.fy import fy_label, parse_fy
from cml.inputs import (
    CONTROL_CHARACTERS,
    KNOWN_SETTINGS,
    MAX_MONEY,
    Assumptions,
    Inputs,
    assumptions_from_dict,
    forecast_window_problems,
)


@dataclass(frozen=True)
class Setting:
    """A scenario setting's kind and range. ``kind``: float, int, bool, fy (or ""), or a list kind."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    fields: tuple[str, ...] = ()


SCENARIO_FILE = "scenarios.toml"
BASELINE = "baseline"  # the scenario every other one is compared with; the file must define it
WHAT_IF = "what_if"  # the scenario a `--set` run adds
MONEY = Setting("float", 0)
SETTINGS: dict[str, Setting] = {
    "fund.opening_year": Setting("fy_required"),
    "fund.opening_balance": MONEY,
    "fund.top_ups": Setting("table", fields=("financial_year", "amount", "source")),
    "fund.reserves_floor_months": Setting("float", 0, 24),
    "fund.cap_per_claim": MONEY,
    "fund.cap_per_library": MONEY,
    "fund.pays_building_failures": Setting("bool"),
    "fund.pays_reserves_floor": Setting("bool"),
    "lease.threshold_years": Setting("float", 0, 50),
    "lease.extension_years": Setting("int", 1, 99),
    "lease.new_lease_years": Setting("int", 0, 99),
    "lease.library_fees": MONEY,
    "lease.council_fees": MONEY,
    "funders.min_lease_years": Setting("float", 0, 50),
    "funders.other_grants_lost_share": Setting("float", 0, 1),
    "council.takes_fabric_repairs": Setting("bool"),
    "council.takes_running_costs": Setting("bool"),
    "shocks.closure_year": Setting("fy"),
    "shocks.closure_weeks": Setting("float", 0, 52),
    "shocks.weekly_loss": MONEY,
    "shocks.recovery": Setting("fractions"),
    "shocks.business_grants": Setting("table", fields=("library_id", "financial_year", "amount")),
    "shocks.building_failures": Setting("table", fields=("library_id", "financial_year", "cost")),
    "shocks.council_income_cuts": Setting("table", fields=("library_id", "financial_year", "line", "amount")),
    "levers.libraries": Setting("names"),
    "levers.reserves_target_months": Setting("float", 0, 120),
    "levers.use_reserves_target": Setting("bool"),
    "levers.cost_change": Setting("float", -0.9, 5),
    "levers.income_change": Setting("float", -0.9, 5),
    "levers.extra_income": MONEY,
    "levers.saving": MONEY,
    "levers.one_off_cost": MONEY,
    "levers.one_off_year": Setting("fy"),
}
# How each setting reads in a sentence (`cml scenarios`, a what-if's description in its briefing).
SETTING_WORDS = {
    "fund.opening_year": "contingency fund opens in", "fund.opening_balance": "contingency fund opening balance",
    "fund.top_ups": "contingency fund top-ups", "fund.reserves_floor_months": "fund pays below (months of cover)",
    "fund.cap_per_claim": "fund cap per claim", "fund.cap_per_library": "fund cap per library",
    "fund.pays_building_failures": "fund pays building failures",
    "fund.pays_reserves_floor": "fund tops up libraries below the reserves floor",
    "lease.new_lease_years": "new lease on top of the unexpired term (years)",
    "shocks.council_income_cuts": "council decisions that cut a library's income",
    "lease.threshold_years": "lease may be extended with (years or less left)",
    "lease.extension_years": "lease extension (years)", "lease.library_fees": "library's fees per extension",
    "lease.council_fees": "council's fees per extension",
    "funders.min_lease_years": "funders want a lease of (years)",
    "funders.other_grants_lost_share": "share of other grants lost while the lease is short",
    "council.takes_fabric_repairs": "council takes the building fabric repairs",
    "council.takes_running_costs": "council takes all running costs",
    "shocks.closure_year": "closure in", "shocks.closure_weeks": "closure (weeks)",
    "shocks.weekly_loss": "income lost per week of closure", "shocks.recovery": "recovery after closure",
    "shocks.business_grants": "Covid business grants", "shocks.building_failures": "building failures",
    "levers.libraries": "trustees' levers apply to", "levers.reserves_target_months": "reserves target (months)",
    "levers.use_reserves_target": "use the reserves target", "levers.cost_change": "change in costs",
    "levers.income_change": "change in income", "levers.extra_income": "extra income a year",
    "levers.saving": "saving a year", "levers.one_off_cost": "one-off cost",
    "levers.one_off_year": "one-off cost in",
    "forecast.actuals_to": "accounts used up to", "forecast.horizon": "forecast to",
}
MONEY_SETTINGS = {"fund.opening_balance", "fund.cap_per_claim", "fund.cap_per_library", "lease.library_fees",
                  "lease.council_fees", "shocks.weekly_loss", "levers.one_off_cost",
                  "levers.extra_income", "levers.saving"}
SHARE_SETTINGS = {"funders.other_grants_lost_share", "levers.cost_change", "levers.income_change"}
SECTIONS = {key.split(".")[0] for key in SETTINGS} | set(KNOWN_SETTINGS)
ASSUMPTION_KEYS = {f"{section}.{key}" for section, keys in KNOWN_SETTINGS.items() for key in keys}


@dataclass(frozen=True)
class Scenario:
    """One scenario: its name, the sentence a committee member reads, and every setting resolved."""

    name: str
    description: str
    settings: dict[str, Any]
    assumptions: Assumptions

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]


def describe_value(key: str, value) -> str:
    """A setting's value as a sentence would give it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return "none"
        if all(isinstance(item, dict) for item in value):
            rows = [", ".join(str(v) for v in item.values() if v != "") for item in value]
            return "; ".join(rows) if len(rows) <= 4 else f"{len(rows)} entries: " + "; ".join(rows[:3]) + "; ..."
        return ", ".join(str(item) for item in value)
    if value == "":
        return "none"
    if key in MONEY_SETTINGS and isinstance(value, int | float):
        return f"£{value:,.0f}"
    if key in SHARE_SETTINGS and isinstance(value, int | float):
        return f"{value:+.0%}" if key.startswith("levers.") else f"{value:.0%}"
    return str(value)


def scenario_changes(scenario: Scenario, parent: Scenario | None) -> list[str]:
    """What ``scenario`` sets differently from ``parent``, in words: 'lease extension (years): 10 (instead of 5)'."""
    if parent is None:
        return []
    changes = []
    for key, value in scenario.settings.items():
        if key in ("description", "inherits") or parent.settings.get(key) == value:
            continue
        words = SETTING_WORDS.get(key, key.replace(".", ": ").replace("_", " "))
        changes.append(f"{words}: {describe_value(key, value)} (instead of {describe_value(key, parent.settings.get(key, ''))})")
    return changes


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """``{"fund": {"cap_per_claim": 5}} -> {"fund.cap_per_claim": 5}``; lists of tables stay whole."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _fy_problem(value: Any, blank_allowed: bool) -> str | None:
    """Why ``value`` is not a financial year label (``""`` allowed where a setting may be unset)."""
    if value == "" and blank_allowed:
        return None
    try:
        parse_fy(value)
    except (ValueError, TypeError):
        return f"{value!r} is not a financial year written like \"2025/26\"" + (" (or \"\" for none)" if blank_allowed else "")
    return None


def check_value(key: str, value: Any) -> str | None:
    """Why ``value`` is wrong for setting ``key``, or None when it is right."""
    setting = SETTINGS[key]
    kind = setting.kind
    if kind == "bool":
        return None if isinstance(value, bool) else f"{value!r} should be true or false"
    if kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and not isinstance(value, int)):
            return f"{value!r} should be a {'whole number' if kind == 'int' else 'number'}"
        if not math.isfinite(value):
            return f"{value!r} should be a finite number"
        if setting is MONEY and value > MAX_MONEY:
            return f"{value!r} is more than £{MAX_MONEY:,.0f}: money is in pounds, and a figure this size is a typing slip"
        if setting.minimum is not None and value < setting.minimum:
            return f"{value!r} is below the minimum {setting.minimum}"
        if setting.maximum is not None and value > setting.maximum:
            return f"{value!r} is above the maximum {setting.maximum}"
        return None
    if kind in ("fy", "fy_required"):
        return _fy_problem(value, blank_allowed=kind == "fy")
    if kind == "fractions":
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                                             for v in value)
        return None if ok else f"{value!r} should be a list of fractions between 0 and 1"
    if kind == "names":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else f"{value!r} should be a list of library_ids"
    if kind == "table":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return f"should be a list of tables with {', '.join(setting.fields)}"
        for index, row in enumerate(value, start=1):
            required = [f for f in setting.fields if f != "source"]
            if set(required) - set(row) or set(row) - set(setting.fields):
                return f"entry {index} should have exactly {', '.join(required)} (and optionally source)"
            if "library_id" in row and not isinstance(row["library_id"], str):
                return f"entry {index}: library_id {row['library_id']!r} should be text"
            if "financial_year" in row and (reason := _fy_problem(row["financial_year"], blank_allowed=False)):
                return f"entry {index}: {reason}"
            amount = row.get("amount", row.get("cost"))
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount < 0:
                return f"entry {index}: {amount!r} should be a number of pounds, not negative"
            if amount > MAX_MONEY:
                return f"entry {index}: {amount!r} is more than £{MAX_MONEY:,.0f}, a typing slip"
        if key == "fund.top_ups":
            years = [row["financial_year"] for row in value]
            repeated = next((i for i, year in enumerate(years) if year in years[:i]), None)
            if repeated is not None:
                return (f"entry {repeated + 1}: {years[repeated]} repeats entry {years.index(years[repeated]) + 1}: "
                        "one top-up per year (add the amounts together)")
        return None
    raise ValueError(f"unknown setting kind {kind}")


def resolve(name: str, raw: dict[str, dict], label: str, problems: list[Problem], seen: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A scenario's settings with everything it inherits filled in, or None after reporting why not."""
    if name in seen:
        cycle = seen[seen.index(name):] + (name,)
        problems.append(Problem(label, None, f"{name}: inherits", f"inheritance goes round in a cycle: {' -> '.join(cycle)}"))
        return None
    own = raw[name]
    parent = own.get("inherits")
    if not isinstance(parent, str | None):
        return None  # reported by load_scenarios
    if parent is None:
        return dict(own)
    if parent not in raw:
        problems.append(Problem(label, None, f"{name}: inherits", f"inherits from '{parent}', which is not a scenario in this file"))
        return None
    inherited = resolve(parent, raw, label, problems, seen + (name,))
    if inherited is None:
        return None
    merged = {**inherited, **own}
    merged["inherits"] = parent
    return merged


def label_of(name: str) -> str:
    """How a scenario's name reads in the pack (the same rule as ``cml.render.readable``)."""
    return name.replace("_", " ").capitalize()


def _name_problems(raw: dict[str, dict], label: str) -> list[Problem]:
    """Names, parents and descriptions a reader can tell apart: text without control characters
    (a PDF worker must not choke on them), ``inherits`` one name, no two scenarios that read alike."""
    problems = []
    for name, table in raw.items():
        if CONTROL_CHARACTERS.search(name) or not name.strip():
            problems.append(Problem(label, None, repr(name), "a scenario name must be visible text without control "
                                    "characters (tabs, new lines, escapes)"))
        parent = table.get("inherits")
        if parent is not None and not isinstance(parent, str):
            problems.append(Problem(label, None, f"{name}: inherits", f"{parent!r} should be the name of one scenario "
                                    'in quotes, e.g. inherits = "baseline"'))
        description = table.get("description")
        if description is not None and (not isinstance(description, str) or not description.strip()
                                        or CONTROL_CHARACTERS.search(description)):
            problems.append(Problem(label, None, f"{name}: description", f"{description!r} should be one line of text "
                                    "in quotes, without control characters"))
    by_label: dict[str, str] = {}
    by_description: dict[str, str] = {}
    for name, table in raw.items():
        readable = label_of(name).casefold()
        if readable in by_label:
            problems.append(Problem(label, None, name, f"reads as '{label_of(name)}' in the pack, the same as "
                                    f"scenario '{by_label[readable]}': rename one"))
        by_label.setdefault(readable, name)
        description = table.get("description")
        if isinstance(description, str):
            key = " ".join(description.split()).casefold()
            if key in by_description:
                problems.append(Problem(label, None, f"{name}: description", f"is the same as the description of "
                                        f"'{by_description[key]}': say what this scenario changes"))
            by_description.setdefault(key, name)
    return problems


def load_scenarios(path: Path, assumptions: Assumptions, overrides: dict[str, Any] | None = None) -> list[Scenario]:
    """Every scenario in the file, checked: unknown keys, bad types or ranges, missing or cyclic parents."""
    label = path.name
    if not path.exists():
        raise InputError([Problem(label, None, None, "file is missing")])
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8-sig"))  # a BOM from Notepad is harmless
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError([Problem(label, None, None, f"not valid UTF-8 TOML: {err}")]) from err
    raw = {name: flatten(table) for name, table in document.items() if isinstance(table, dict)}
    problems: list[Problem] = [Problem(label, None, name, "should be a table [name] of settings")
                               for name, table in document.items() if not isinstance(table, dict)]
    if WHAT_IF in raw:
        problems.append(Problem(label, None, WHAT_IF, "this name is kept for `cml forecast --set`; call the scenario something else"))
    if BASELINE not in raw:
        problems.append(Problem(label, None, BASELINE, f"the file must define a [{BASELINE}] scenario that names every setting"))
        raise InputError(problems)
    problems += _name_problems(raw, label)
    for name, table in raw.items():
        for key, value in table.items():
            if key in ("inherits", "description"):
                continue
            if key in SECTIONS:
                problems.append(Problem(label, None, f"{name}: {key}", f"should be a table [{name}.{key}] of settings"))
            elif key not in SETTINGS and key not in ASSUMPTION_KEYS:
                problems.append(Problem(label, None, f"{name}: {key}", "unknown setting"))
            elif key in SETTINGS and (reason := check_value(key, value)):
                problems.append(Problem(label, None, f"{name}: {key}", reason))
    missing = sorted(set(SETTINGS) - set(raw[BASELINE]))
    problems += [Problem(label, None, f"baseline: {key}", "the baseline must set this") for key in missing]
    if problems:
        raise InputError(problems)
    scenarios = [_scenario(name, raw, label, assumptions, problems) for name in raw]
    if overrides and scenarios[list(raw).index(BASELINE)] is not None:
        scenarios.append(_what_if(scenarios[list(raw).index(BASELINE)], overrides, assumptions, problems))
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    return [s for s in scenarios if s is not None]


def scenario_file_problems(inputs_dir: Path) -> list[Problem]:
    """What is wrong with ``scenarios.toml`` (then ``sensitivity.toml`` and ``recommendation.toml``)
    on its own (against ``assumptions.toml`` only), so that ``cml validate`` reports it beside the
    CSVs' problems instead of after they are fixed."""
    from cml.inputs import load_assumptions
    found: list[Problem] = []
    assumptions = load_assumptions(Path(inputs_dir) / "assumptions.toml", found)
    if assumptions is None:
        return []
    try:
        scenarios = load_scenarios(Path(inputs_dir) / SCENARIO_FILE, assumptions)
        load_steps(Path(inputs_dir) / SENSITIVITY_FILE, next(s for s in scenarios if s.name == BASELINE))
        load_recommendation(Path(inputs_dir) / RECOMMENDATION_FILE, scenarios)
    except InputError as err:
        return err.problems
    return []


def _scenario(name: str, raw: dict, label: str, assumptions: Assumptions, problems: list[Problem]) -> Scenario | None:
    settings = resolve(name, raw, label, problems)
    if settings is None:
        return None
    if "description" not in raw[name]:
        problems.append(Problem(label, None, f"{name}: description", "every scenario needs a one-line description"))
        return None
    return Scenario(name, settings["description"], settings, _assumptions_for(settings, assumptions, label, name, problems))


def _assumptions_for(settings: dict, assumptions: Assumptions, label: str, name: str,
                     problems: list[Problem]) -> Assumptions:
    """The run's assumptions with this scenario's overrides of them applied and re-checked."""
    raw = {section: dict(values) for section, values in assumptions.raw.items()}
    for key in ASSUMPTION_KEYS & set(settings):
        section, setting = key.split(".")
        raw.setdefault(section, {})[setting] = settings[key]
    found: list[Problem] = []
    resolved = assumptions_from_dict(raw, label, found)
    where = "" if name == WHAT_IF else f"{name}: "
    problems += [Problem(label, None, f"{where}{p.column}", p.reason) for p in found]
    return resolved or assumptions


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs, values read as TOML (``0.1``, ``true``, ``"2026/27"``) or else text."""
    overrides = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise InputError([Problem("--set", None, pair, "should be written key=value, e.g. levers.cost_change=-0.1")])
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        overrides[key.strip()] = value
    return overrides


def _what_if(baseline: Scenario, overrides: dict[str, Any], assumptions: Assumptions, problems: list[Problem]) -> Scenario:
    """A trustee's what-if: the baseline with ``--set`` values applied."""
    for key, value in overrides.items():
        if key not in SETTINGS and key not in ASSUMPTION_KEYS:
            problems.append(Problem("--set", None, key, "unknown setting"))
        elif key in SETTINGS and (reason := check_value(key, value)):
            problems.append(Problem("--set", None, key, reason))
    settings = {**baseline.settings, **overrides, "inherits": BASELINE}
    description = "What if: " + "; ".join(scenario_changes(Scenario(WHAT_IF, "", settings, baseline.assumptions), baseline))
    return Scenario(WHAT_IF, description, settings, _assumptions_for(settings, assumptions, "--set", WHAT_IF, problems))


def _in_forecast(last_actual: pd.Series, horizon: int, library_id: str, label: str) -> bool:
    """Whether financial year ``label`` is one of this library's forecast years."""
    return last_actual[library_id] < parse_fy(label) <= horizon


def check_scenarios_against_inputs(scenarios: list[Scenario], inputs: Inputs, file: str = SCENARIO_FILE) -> None:
    """What a scenario names must exist and fall in its forecast: libraries, and dated shocks or
    one-off costs after that library's last actual year and by the horizon (a shock in an actual
    year would be silently ignored, as the accounts already say what happened)."""
    problems: list[Problem] = []
    known = set(inputs.libraries["library_id"])
    self_generated = set(inputs.lines.loc[inputs.lines["group"] == "self_generated", "line"])
    latest = inputs.reserves.groupby("library_id")["year"].max()
    for scenario in scenarios:
        label, where = ("--set", "") if scenario.name == WHAT_IF else (file, f"{scenario.name}: ")
        problems += [Problem(label, None, where + key, reason)
                     for key, reason in forecast_window_problems(inputs.reserves, scenario.assumptions)]
        cutoff = scenario.assumptions.actuals_to
        last_actual = latest if cutoff is None else latest.clip(upper=cutoff)
        horizon = scenario.assumptions.horizon

        opening = parse_fy(scenario["fund.opening_year"])
        for index, row in enumerate(scenario["fund.top_ups"], start=1):
            if not opening <= parse_fy(row["financial_year"]) <= horizon:
                problems.append(Problem(label, None, where + "fund.top_ups", (
                    f"entry {index}: {row['financial_year']} is outside the fund's years ({fy_label(opening)}, when it "
                    f"opens, to the horizon {fy_label(horizon)}): the top-up would never be paid in")))
        closure = scenario["shocks.closure_year"]
        if closure and scenario["shocks.closure_weeks"] > 0 and not last_actual.min() < parse_fy(closure) <= horizon:
            problems.append(Problem(label, None, where + "shocks.closure_year", (
                f"{closure} is not a forecast year for any library (forecasts run from "
                f"{fy_label(int(last_actual.min()) + 1)} to {fy_label(horizon)}): the closure would be ignored")))
        problems += [Problem(label, None, where + "levers.libraries", f"'{lib}' is not a library_id in libraries.csv")
                     for lib in scenario["levers.libraries"] if lib not in known]
        for key in ("shocks.business_grants", "shocks.building_failures", "shocks.council_income_cuts"):
            for index, row in enumerate(scenario[key], start=1):
                library_id, year = row["library_id"], row["financial_year"]
                if library_id not in known:
                    reason = f"entry {index}: '{library_id}' is not a library_id in libraries.csv"
                elif not _in_forecast(last_actual, horizon, library_id, year):
                    reason = (f"entry {index}: {year} is not a forecast year for {library_id} (after "
                              f"{fy_label(int(last_actual[library_id]))}, up to {fy_label(horizon)})")
                else:
                    continue
                problems.append(Problem(label, None, where + key, reason))
        problems += [Problem(label, None, where + "shocks.council_income_cuts",
                             f"entry {index}: line {row['line']!r} is not a self-generated income line of lines.csv")
                     for index, row in enumerate(scenario["shocks.council_income_cuts"], start=1)
                     if row["line"] not in self_generated]
        if scenario["levers.one_off_cost"] > 0 and scenario["levers.one_off_year"]:
            year = scenario["levers.one_off_year"]
            chosen = [lib for lib in scenario["levers.libraries"] or sorted(known) if lib in known]
            late = [lib for lib in chosen if not _in_forecast(last_actual, horizon, lib, year)]
            if late:
                problems.append(Problem(label, None, where + "levers.one_off_year",
                                        f"{year} is not a forecast year for {', '.join(late[:3])}"
                                        f"{f' and {len(late) - 3} more' if len(late) > 3 else ''} (forecasts run "
                                        f"from the year after the latest accounts to {fy_label(horizon)})"))
    if problems:
        raise InputError(list(dict.fromkeys(problems)))


# ---------------------------------------------------------------------------------------------
# Sensitivity steps: what moves the answer (inputs/sensitivity.toml)

SENSITIVITY_FILE = "sensitivity.toml"
DIRECTIONS = {"down": -1, "up": 1}
STEP_KEYS = {"label", "setting", "step", "with", "source"}


@dataclass(frozen=True)
class Step:
    """One bar of the tornado: ``setting`` moved ``step`` down and up from the baseline's value,
    with ``also`` set (what the step needs to mean something: a closure needs a year)."""

    name: str
    label: str
    setting: str
    step: float
    also: dict[str, Any]
    source: str


@dataclass(frozen=True)
class StepRun:
    """One side of a step, as a scenario: the baseline with the setting moved."""

    step: Step
    direction: str  # "down" or "up"
    value: Any  # the setting's value on this side
    scenario: Scenario


def _baseline_value(baseline: Scenario, key: str) -> Any:
    """The baseline's value of a scenario setting or of an assumptions.toml setting."""
    if key in SETTINGS:
        return baseline.settings[key]
    section, setting = key.split(".")
    return baseline.assumptions.raw.get(section, {}).get(setting)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _step_problems(name: str, table: Any, baseline: Scenario) -> list[tuple[str, str]]:
    """What is wrong with one ``[name]`` step, as (where, reason) pairs."""
    if not isinstance(table, dict):
        return [(name, f"should be a table [{name}] with label, setting, step and source")]
    found = [(f"{name}: {key}", f"unknown key (use {', '.join(sorted(STEP_KEYS))})") for key in sorted(set(table) - STEP_KEYS)]
    found += [(f"{name}: {key}", "missing") for key in sorted({"label", "setting", "step", "source"} - set(table))]
    setting = table.get("setting")
    if setting is not None and setting not in SETTINGS and setting not in ASSUMPTION_KEYS:
        found.append((f"{name}: setting", f"{setting!r} is not a setting of scenarios.toml or assumptions.toml"))
    elif setting is not None and not _is_number(_baseline_value(baseline, setting)):
        found.append((f"{name}: setting", f"{setting} is not a number, so it cannot be moved by a step"))
    if "step" in table and not _is_number(table["step"]):
        found.append((f"{name}: step", f"{table['step']!r} should be a number"))
    elif "step" in table and table["step"] < 0:
        found.append((f"{name}: step", f"{table['step']!r} should be 0 or more: each step is moved both down and up "
                      "from the baseline, so a negative one would swap the sides"))
    found += [(f"{name}: {key}", "should be text") for key in ("label", "source")
              if key in table and not (isinstance(table[key], str) and table[key].strip())]
    also = table.get("with", {})
    if not isinstance(also, dict):
        return found + [(f"{name}: with", 'should be a table of settings, e.g. { "shocks.closure_year" = "2025/26" }')]
    for key, value in also.items():
        if key not in SETTINGS and key not in ASSUMPTION_KEYS:
            found.append((f"{name}: with: {key}", "unknown setting"))
        elif key in SETTINGS and (reason := check_value(key, value)):
            found.append((f"{name}: with: {key}", reason))
    return found


def load_steps(path: Path, baseline: Scenario) -> list[StepRun]:
    """Every step of the sensitivity file, each side a scenario: the baseline with the setting
    moved by the step (and the step's ``with`` settings). A side that would take the setting out
    of its range (fewer than nought weeks closed, a negative fee) is not run; so is a step of nil
    on its down side, which would repeat the up side."""
    label = path.name
    if not path.exists():
        raise InputError([Problem(label, None, None, "file is missing")])
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError([Problem(label, None, None, f"not valid UTF-8 TOML: {err}")]) from err
    problems = [Problem(label, None, where, reason)
                for name, table in document.items() for where, reason in _step_problems(name, table, baseline)]
    if problems:
        raise InputError(problems)
    runs: list[StepRun] = []
    for name, table in document.items():
        sides = len(runs)
        step = Step(name, table["label"].strip(), table["setting"], float(table["step"]), dict(table.get("with", {})),
                    table["source"].strip())
        start = _baseline_value(baseline, step.setting)
        out_of_range: list[str] = []
        for direction, sign in DIRECTIONS.items():
            if direction == "down" and step.step == 0:
                continue
            value = start + sign * step.step
            if isinstance(start, int) and float(value).is_integer():
                value = int(value)
            settings = {**baseline.settings, **step.also, step.setting: value, "inherits": BASELINE}
            found: list[Problem] = []
            if step.setting in SETTINGS and (reason := check_value(step.setting, value)):
                out_of_range.append(f"{direction} to {value:g}: {reason}")
                continue
            assumptions = _assumptions_for(settings, baseline.assumptions, label, name, found)
            if found:
                out_of_range += [f"{direction} to {value:g}: {p.reason}" for p in found]
                continue
            description = f"{step.label}: {step.setting} {direction} by {abs(step.step):g} to {value:g}"
            runs.append(StepRun(step, direction, value, Scenario(f"{name}_{direction}", description, settings,
                                                                 assumptions)))
        if len(runs) == sides:  # neither side can run: a step that moves nothing must not vanish from the pack unsaid
            problems.append(Problem(label, None, f"{name}: step", f"{step.step:g} takes {step.setting} out of its range "
                                    f"both ways from {start:g} ({'; '.join(out_of_range)})"))
    if problems:
        raise InputError(problems)
    return runs


# ---------------------------------------------------------------------------------------------
# The officer's recommendation (inputs/recommendation.toml)

RECOMMENDATION_FILE = "recommendation.toml"


@dataclass(frozen=True)
class Recommendation:
    """Which option the portfolio report recommends to Cabinet, and why, in the officer's words;
    the figures the paragraph quotes are the model's."""

    scenario: str
    reason: str


def load_recommendation(path: Path, scenarios: list[Scenario]) -> Recommendation | None:
    """The recommendation, checked against the scenarios run; None without the file or with
    ``scenario = ""`` (the Committee is then asked only to note the forecast)."""
    label = path.name
    if not path.exists():
        return None
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError([Problem(label, None, None, f"not valid UTF-8 TOML: {err}")]) from err
    problems = [Problem(label, None, key, "unknown key (use scenario and reason)") for key in set(document) - {"scenario", "reason"}]
    scenario, reason = document.get("scenario", ""), document.get("reason", "")
    names = [s.name for s in scenarios if s.name != WHAT_IF]
    if not isinstance(scenario, str):
        problems.append(Problem(label, None, "scenario", f"{scenario!r} should be a scenario's name in quotes"))
    elif scenario and scenario not in names:
        problems.append(Problem(label, None, "scenario", f"'{scenario}' is not a scenario of {SCENARIO_FILE} "
                                                         f"(choose from {', '.join(n for n in names if n != BASELINE)})"))
    elif scenario == BASELINE:
        problems.append(Problem(label, None, "scenario", "the status quo is what options are compared with: name an option"))
    if not isinstance(reason, str) or CONTROL_CHARACTERS.search(reason) or len(reason) > 600:
        problems.append(Problem(label, None, "reason", "should be one or two sentences of plain text (600 characters at most)"))
    elif scenario and not reason.strip():
        problems.append(Problem(label, None, "reason", "say why the option is recommended (the report quotes it)"))
    if problems:
        raise InputError(problems)
    return Recommendation(scenario, reason.strip().rstrip(".")) if scenario else None
