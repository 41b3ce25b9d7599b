"""Fuzzing the loaders: whatever bytes or cells a volunteer's file holds, ``load_inputs`` either
succeeds or raises :class:`InputError` (located problems), never another exception.

Budget: 60 examples each for random bytes, random frames and one changed cell, across every input CSV, with no
deadline (each example loads the whole inputs folder, about 1 s on a busy 2-core machine), so
the three tests together take well under two minutes; raise ``max_examples`` locally to hunt.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cml.errors import InputError, Problem
from cml.inputs import TABLES, load_inputs

SHIPPED = Path(__file__).resolve().parents[1] / "inputs"
NAMES = [spec.name for spec in TABLES]
COLUMNS = {spec.name: [c.name for c in spec.columns] for spec in TABLES}
TRICKY = ["", " ", "0", "-1", "1e308", "-1e308", "nan", "inf", "1,234.56", "5479,93", "1.860,00", "1,2,3", "12,345",
          "2015/16", "2015-16", "2099/00", "1900/01", "2015-10-01", "0001-01-01", "9999-12-31", "2015-02-30", "anstey",
          "council_grant", "contingency_grant", "full_repairing", "yes", "no", "schedule", "trend", "one_off", "income",
          "expenditure", "100", "20", "0.2", "999999999", "1", "7", "$x^$", "=1+1", "\x00", "\u00e9", "\ufeff"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("fuzz") / "inputs"
    shutil.copytree(SHIPPED, target)
    return target


def loads_or_refuses(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    original = (SHIPPED / name).read_bytes()
    path.write_bytes(data)
    try:
        load_inputs(folder)
    except InputError as err:
        assert err.problems and all(isinstance(p, Problem) for p in err.problems)
        assert all(str(p) for p in err.problems)
    finally:
        path.write_bytes(original)


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=300))
def test_random_bytes_are_read_or_refused(folder: Path, name: str, data: bytes) -> None:
    loads_or_refuses(folder, name, data)


cells = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**12, 10**12).map(str))


@st.composite
def frames(draw) -> tuple[str, bytes]:
    """A header of the expected columns (some dropped, repeated or shuffled) and a few random rows,
    written either as proper CSV or joined with bare commas (so quotes and widths go wrong too)."""
    name = draw(st.sampled_from(NAMES))
    header = list(COLUMNS[name])
    if draw(st.booleans()):
        header = draw(st.permutations(header + draw(st.lists(st.sampled_from(header + ["", "extra"]), max_size=2))))
    rows = draw(st.lists(st.lists(cells, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        text = out.getvalue()
    else:
        text = "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    return name, text.encode("utf-8", errors="surrogatepass")


@SETTINGS
@given(frame=frames())
def test_random_frames_are_read_or_refused(folder: Path, frame: tuple[str, bytes]) -> None:
    loads_or_refuses(folder, *frame)


@st.composite
def one_cell_changed(draw) -> tuple[str, bytes]:
    """The shipped file with one cell replaced: the loader must get past the first checks, into the
    cross-file ones, where a value that is valid on its own can still break a sum or a date."""
    name = draw(st.sampled_from(NAMES))
    rows = list(csv.reader(io.StringIO((SHIPPED / name).read_text(encoding="utf-8"))))
    row = draw(st.integers(1, len(rows) - 1))
    column = draw(st.integers(0, len(rows[0]) - 1))
    rows[row][column] = draw(cells)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return name, out.getvalue().encode("utf-8", errors="surrogatepass")


@SETTINGS
@given(frame=one_cell_changed())
def test_one_changed_cell_is_read_or_refused(folder: Path, frame: tuple[str, bytes]) -> None:
    loads_or_refuses(folder, *frame)
