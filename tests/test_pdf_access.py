"""The PDFs checked by a PDF/UA checker (the PyPI ``pdfua``): no errors, no table warnings, and
every table header cell tagged with the scope its HTML gave it (WeasyPrint issue #2508)."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pytest
from pdfua import Severity, validate

from cml.render import (
    Job,
    briefing_context,
    header_scopes,
    job_html,
    portfolio_context,
    render_html,
    table_headers,
)

pytestmark = pytest.mark.filterwarnings("ignore:HarfBuzz-Subset will be required:DeprecationWarning")

RUN_INFO = {"version": "9.9.9", "run_at": "2025-11-24T07:00:00+00:00", "latest_accounts_year": "2023/24",
            "latest_accounts_year_end": "2024-03-31", "months_since_accounts": 19, "accounts_stale": True,
            "inputs_sha256": "3f2a9c1b7d4e" + "0" * 52, "illustrative": True}


@pytest.fixture(scope="module")
def documents(scenario_forecast, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """One briefing and the portfolio report, rendered as the pack renders them, with their HTML."""
    folder = tmp_path_factory.mktemp("access")
    jobs = {
        "briefing": Job("briefing.html", briefing_context(scenario_forecast, "anstey", RUN_INFO), folder / "anstey.pdf"),
        "portfolio": Job("portfolio.html", portfolio_context(scenario_forecast, RUN_INFO), folder / "portfolio.pdf"),
    }
    made = {}
    for name, job in jobs.items():
        html = job_html(job)
        made[name] = (render_html(html, job.path), html)
    return made


@pytest.mark.parametrize("name", ["briefing", "portfolio"])
def test_pdfua_finds_no_error_and_no_table_warning(documents, name: str) -> None:
    path, _ = documents[name]
    report = validate(str(path))
    errors = [f for f in report.findings if f.severity == Severity.ERROR]
    tables = [f for f in report.findings if f.rule_id.startswith("UA-15")]
    assert not errors, [f.message for f in errors]
    assert not tables, [f.message for f in tables]
    assert report.exit_code == 0, [f.message for f in report.findings]


@pytest.mark.parametrize("name", ["briefing", "portfolio"])
def test_every_header_cell_carries_the_htmls_scope(documents, name: str) -> None:
    path, html = documents[name]
    wanted = header_scopes(html)
    with pikepdf.open(path) as pdf:
        headers = table_headers(pdf)
        got = [str(h.A.Scope) if isinstance(h.A, pikepdf.Dictionary) else
               next(str(a.Scope) for a in h.A if a.get("/O") == "/Table") for h in headers]
    assert len(headers) == len(wanted) > 5
    assert got == wanted
    assert {"/Column", "/Row"} <= set(got)
