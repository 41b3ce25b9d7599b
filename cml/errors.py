"""How cml tells a user what is wrong with their input: every problem at once, each located."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we can.

    ``row`` is the line number a user sees in a spreadsheet or editor (the header is row 1).
    """

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        return f"{where}: {self.column or '-'}: {self.reason}"


class InputError(Exception):
    """Raised with every problem found, so a user can fix them all in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(len(problems))

    def __str__(self) -> str:  # built when shown, and shortened: a million problems must not make a 250 MB string
        return "\n".join(summarise(self.problems))


SHOWN_PER_KIND = 20  # a file of a million bad rows must not print a million lines


def kind_of(problem: Problem) -> tuple[str, str, str]:
    """Problems of one kind: the same file, column and reason once quoted values and numbers are blanked."""
    pattern = re.sub(r"'[^']*'|\d[\d,.]*", "#", problem.reason)
    return (re.sub(r"\[.*\]$", "", problem.file), problem.column or "", pattern)


def summarise(problems: list[Problem], per_kind: int = SHOWN_PER_KIND) -> list[str]:
    """The lines to print: the first ``per_kind`` problems of each kind, in order, then a count of the rest."""
    shown: dict[tuple[str, str, str], int] = {}
    lines, hidden = [], Counter()
    for problem in problems:
        kind = kind_of(problem)
        shown[kind] = shown.get(kind, 0) + 1
        if shown[kind] <= per_kind:
            lines.append(str(problem))
        else:
            hidden[kind] += 1
    for (file, column, _), count in hidden.items():
        lines.append(f"{file}: {column or '-'}: ... and {count:,} more problem(s) like the ones above")
    return lines
