"""Charts for the briefings and the portfolio report, each with the text a screen reader reads.

Every chart function takes plain data (lists keyed by name, as built by :mod:`cml.render` in the
parent process) and returns a :class:`Chart`: markup ready to drop into a template and the
alternative text that describes it with its key figures.

Charts are SVG, embedded in the HTML as an ``<img>`` with a ``data:`` URL. Measured on this
2-core machine with WeasyPrint 70 for one briefing's two charts (``benchmarks/render_pack.py``
prints the comparison again on every run):

* SVG as ``<img>``: about 0.09 s to draw, 0.15 s to write into a PDF, 26 KiB;
* PNG at 150 dpi: about 0.14 s to draw, 0.10 s to write, 112 KiB: the same time in total;
* SVG inline (``<svg>`` in the page) cost 0.13 s more a briefing: WeasyPrint runs every SVG
  element through the HTML style cascade (warning about each ``fill``), and two matplotlib
  SVGs on one page clash on element ids.

So SVG in an ``<img>``: as fast as PNG, sharp at any zoom, a quarter of the size. Two further
choices halved the drawing time: fixed margins instead of matplotlib's constrained layout,
and no hatch patterns where they are not needed (WeasyPrint draws SVG patterns slowly: dotted
hatches on 60 bars cost 1.5 s a chart).

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies), and nothing depends on colour alone: forecast years are dashed or paler and sit
in a shaded region labelled "Forecast", RAG bands carry hatches, and every series is named in a
legend.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import cycle

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: workers have no display

import matplotlib.pyplot as plt
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cml.render import money

BLUE, ORANGE, GREEN, SKY, VERMILLION, PURPLE, YELLOW = (
    "#0072B2", "#E69F00", "#009E73", "#56B4E9", "#D55E00", "#CC79A7", "#F0E442")
INCOME_COLOURS = (BLUE, ORANGE, GREEN, SKY, PURPLE, YELLOW)
SCENARIO_STYLES = ((BLUE, "-", "o"), (VERMILLION, "--", "s"), (GREEN, "-.", "^"), (PURPLE, ":", "D"),
                   (ORANGE, "-", "v"), ("#000000", "--", "x"), (SKY, "-.", "P"), ("#666666", ":", "*"))
RAG_STYLES = {"Red": (VERMILLION, "xx"), "Amber": (ORANGE, "//"), "Green": (GREEN, "")}
FORECAST_ALPHA = 0.55  # forecast bars paler; the shaded, labelled forecast region says it in words
WIDTH_INCHES = 6.9  # the text width of an A4 page with the templates' margins

plt.rcParams.update({
    "svg.fonttype": "none",       # text stays text, drawn with the page's font: 30% smaller SVG
    "svg.hashsalt": "cml",        # stable element ids, so the same inputs give the same PDF
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#d0d0d0",
    "grid.linewidth": 0.5,
    "legend.frameon": False,
})


@dataclass(frozen=True)
class Chart:
    """A drawn chart: ``markup`` goes straight into a template; ``alt`` is its description."""

    markup: Markup
    alt: str


def _text(label: object) -> str:
    """A name from the inputs as literal chart text: matplotlib reads ``$...$`` as mathtext (and a bad
    formula fails the whole PDF), and hides legend entries that start with ``_``."""
    text = str(label).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _pounds_axis(value: float, _position: int) -> str:
    """Axis ticks in whole pounds, negatives bracketed, exactly as the tables print them."""
    return money(value)


def _year_axis(ax: Axes, labels: Sequence[str]) -> None:
    """Financial-year labels on every second year so they never collide."""
    ax.set_xticks(range(0, len(labels), 2), [labels[i] for i in range(0, len(labels), 2)])
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.tick_params(axis="x", labelrotation=0, length=0)


def _forecast_region(ax: Axes, actual: Sequence[bool]) -> None:
    """Shade the forecast years and label them, so a reader never mistakes them for accounts."""
    first_forecast = sum(actual)
    if first_forecast < len(actual):
        ax.axvspan(first_forecast - 0.5, len(actual) - 0.4, color="#f2f2f2", zorder=0)
        ax.text(first_forecast - 0.35, 1.01, "Forecast \u2192", transform=ax.get_xaxis_transform(),
                va="bottom", ha="left", fontsize=7.5, color="#444444")


def _legend_below(ax: Axes, columns: int) -> None:
    """Legend under the plot, where it never hides a line."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=columns, fontsize=7.5,
              handlelength=2.6)


def _figure(height: float) -> tuple[Figure, Axes]:
    """A page-wide figure with fixed margins: room for £(1,000,000) ticks and a legend below.

    Fixed margins instead of matplotlib's constrained layout, which measures every label and
    took a third of the time to draw a chart.
    """
    figure, ax = plt.subplots(figsize=(WIDTH_INCHES, height))
    figure.subplots_adjust(left=0.12, right=0.99, top=0.92, bottom=0.24 * 2.9 / height)
    return figure, ax


def _markup(figure: Figure, alt: str, fmt: str) -> Markup:
    """The figure as an ``<img>`` whose ``alt`` becomes the PDF's /Alt text for the figure."""
    buffer = io.BytesIO()
    if fmt == "svg":
        figure.savefig(buffer, format="svg", metadata={"Date": None})
        media = "image/svg+xml"
    elif fmt == "png":
        figure.savefig(buffer, format="png", dpi=150)
        media = "image/png"
    else:
        raise ValueError(f"chart format must be 'svg' or 'png', not {fmt!r}")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Markup(f'<img class="chart" alt="{escape(alt, quote=True)}" src="data:{media};base64,{data}">')


def _split_at_actuals(values: Sequence[float], actual: Sequence[bool]) -> tuple[list, list]:
    """(x, y) points of the actual years, and of the forecast years joined to the last actual one.

    Actual years always come first (the projection runs from the accounts forward).
    """
    points = list(enumerate(values))
    last_actual = sum(actual) - 1
    return points[:last_actual + 1], points[max(last_actual, 0):]


def _plot_actual_and_forecast(ax: Axes, values: Sequence[float], actual: Sequence[bool], label: str,
                              colour: str, width: float, marker: str) -> None:
    """One series: solid with markers over the accounts, dashed over the forecast."""
    solid, dashed = _split_at_actuals(values, actual)
    if solid:
        ax.plot(*zip(*solid, strict=True), color=colour, linewidth=width, marker=marker, markersize=3.5,
                label=f"{label} (accounts)")
    if len(dashed) > 1:
        ax.plot(*zip(*dashed, strict=True), color=colour, linewidth=width, linestyle="--", label=f"{label} (forecast)")


def reserves_chart(data: dict, fmt: str = "svg") -> Chart:
    """Free and total reserves by year against the reserves-policy band, grant end marked.

    ``data`` keys: ``financial_year``, ``actual``, ``free_reserves``, ``closing_reserves``,
    ``reserves_target`` (lists, one item a year), ``target_months``, ``last_grant_year``
    (label) and ``run_out_year`` (label or None).
    """
    labels, actual = data["financial_year"], data["actual"]
    figure, ax = _figure(2.9)
    positions = range(len(labels))
    ax.fill_between(positions, 0, data["reserves_target"], color=GREEN, alpha=0.18, linewidth=0,
                    label=f"Reserves policy: {data['target_months']:g} months of spending")
    ax.axhline(0, color="#000000", linewidth=0.8)
    _fan(ax, data.get("fan"), actual)
    _plot_actual_and_forecast(ax, data["closing_reserves"], actual, "Total reserves", "#666666", 1.0, "s")
    _plot_actual_and_forecast(ax, data["free_reserves"], actual, "Free reserves", BLUE, 2.0, "o")
    _mark_grant_end(ax, labels, data["last_grant_year"])
    return _money_by_year_chart(figure, ax, labels, actual, _reserves_alt(data), fmt)


def _fan(ax: Axes, fan: dict | None, actual: Sequence[bool], colour: str = BLUE) -> None:
    """Bands of the central 90% and 50% of simulated futures over the forecast years, joined to
    the last actual year (where every future starts from the accounts). ``fan`` has ``p5, p25,
    p75, p95`` lists over the forecast years and ``start``, the last actual value."""
    if not fan:
        return
    first = sum(actual)
    x = list(range(first - 1, first + len(fan["p5"])))
    for low, high, alpha, label in (("p5", "p95", 0.15, "9 futures in 10 fall in this band"),
                                    ("p25", "p75", 0.32, "the middle half of futures")):
        ax.fill_between(x, [fan["start"], *fan[low]], [fan["start"], *fan[high]], color=colour, alpha=alpha,
                        linewidth=0, label=label, zorder=1)


def _money_by_year_chart(figure: Figure, ax: Axes, labels: Sequence[str], actual: Sequence[bool], alt: str,
                         fmt: str) -> Chart:
    """Finish a briefing chart the same way every time: forecast shaded, years along the bottom,
    pounds up the side as the tables print them, legend below."""
    _forecast_region(ax, actual)
    _year_axis(ax, labels)
    ax.yaxis.set_major_formatter(FuncFormatter(_pounds_axis))
    _legend_below(ax, 3)
    return Chart(_markup(figure, alt, fmt), alt)


def _mark_grant_end(ax: Axes, labels: Sequence[str], last_grant_year: str) -> None:
    """A dotted line after the last year of council taper grant, labelled at the top."""
    if last_grant_year in labels:
        x = labels.index(last_grant_year) + 0.5
        ax.axvline(x, color="#000000", linestyle=":", linewidth=1.2)
        ax.text(x - 0.1, 1.01, "Grant ends", transform=ax.get_xaxis_transform(), ha="right",
                va="bottom", fontsize=7.5)


def _reserves_alt(data: dict) -> str:
    """What the reserves chart shows, in words, with the figures a reader would look for."""
    labels, actual, free = data["financial_year"], data["actual"], data["free_reserves"]
    last = sum(actual) - 1
    run_out = (f"they fall below zero in {data['run_out_year']}" if data["run_out_year"]
               else f"they stay above zero to {labels[-1]}")
    fan = data.get("fan")
    band = (f" Shaded bands around the forecast show where 9 in 10 and the middle half of simulated futures "
            f"fall: in {labels[-1]} between {money(fan['p5'][-1])} and {money(fan['p95'][-1])} for 9 in 10."
            if fan else "")
    return (f"Line chart of free and total reserves by year, {labels[0]} to {labels[-1]}, "
            f"against a band showing the reserves policy of {data['target_months']:g} months of spending. "
            f"Free reserves were {money(free[last])} at the end of {labels[last]} (latest accounts) "
            f"and are forecast at {money(free[-1])} in {labels[-1]}; {run_out}.{band} "
            f"The council grant ends after {data['last_grant_year']}.")


def income_chart(data: dict, fmt: str = "svg") -> Chart:
    """Income by source as stacked bars, with spending as a line across them.

    ``data`` keys: ``financial_year``, ``actual``, ``income`` (an ordered mapping of source
    label to a list of amounts) and ``expenditure``.
    """
    labels, actual = data["financial_year"], data["actual"]
    figure, ax = _figure(2.9)
    positions = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    alphas = [1.0 if is_actual else FORECAST_ALPHA for is_actual in actual]
    for (source, amounts), colour in zip(data["income"].items(), cycle(INCOME_COLOURS)):
        ax.bar(positions, amounts, bottom=bottom, color=[to_rgba(colour, a) for a in alphas], width=0.7,
               label=_text(source), edgecolor="white", linewidth=0.3)
        bottom = [b + a for b, a in zip(bottom, amounts, strict=True)]
    _plot_actual_and_forecast(ax, data["expenditure"], actual, "Spending", "#000000", 1.6, "o")
    return _money_by_year_chart(figure, ax, labels, actual, _income_alt(data), fmt)


def _income_alt(data: dict) -> str:
    """The income chart in words: latest actual and final forecast year, by source and in total."""
    labels, actual = data["financial_year"], data["actual"]

    def year_in_words(i: int) -> str:
        parts = ", ".join(f"{source} {money(amounts[i])}" for source, amounts in data["income"].items())
        total = sum(amounts[i] for amounts in data["income"].values())
        return (f"in {labels[i]} income was {money(total)} ({parts}) against spending of "
                f"{money(data['expenditure'][i])}")

    last = sum(actual) - 1
    return (f"Stacked bar chart of income by source with spending as a line, {labels[0]} to "
            f"{labels[-1]}; forecast years are hatched. Latest accounts: {year_in_words(last)}. "
            f"Forecast: {year_in_words(len(labels) - 1)}.")


def rag_chart(data: dict, fmt: str = "svg") -> Chart:
    """Libraries by RAG status each year, as stacked bars with a hatch per status.

    ``data`` keys: ``financial_year``, ``scenario`` (its label), ``last_actual_year`` and one
    list of counts per status: ``Red``, ``Amber``, ``Green``.
    """
    labels = data["financial_year"]
    figure, ax = _figure(2.7)
    positions = list(range(len(labels)))
    bottom = [0] * len(labels)
    for status, (colour, hatch) in RAG_STYLES.items():
        ax.bar(positions, data[status], bottom=bottom, color=colour, hatch=hatch, width=0.7,
               edgecolor="white", linewidth=0.3, label=status)
        bottom = [b + c for b, c in zip(bottom, data[status], strict=True)]
    _forecast_region(ax, _actual_flags(labels, data["last_actual_year"]))
    _year_axis(ax, labels)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Libraries")
    _legend_below(ax, 3)
    alt = _rag_alt(data)
    return Chart(_markup(figure, alt, fmt), alt)


def _actual_flags(labels: Sequence[str], last_actual_year: str) -> list[bool]:
    """Which of the portfolio's years are covered by every library's accounts."""
    last = labels.index(last_actual_year)
    return [i <= last for i in range(len(labels))]


def _rag_alt(data: dict) -> str:
    """The RAG chart in words: the counts in the latest actual year and the last forecast year."""
    labels = data["financial_year"]

    def counts(i: int) -> str:
        return ", ".join(f"{data[status][i]} {status}" for status in RAG_STYLES)

    now = labels.index(data["last_actual_year"])
    return (f"Stacked bar chart of the number of libraries rated Red, Amber and Green each year, "
            f"{labels[0]} to {labels[-1]}, {data['scenario']} scenario. {labels[now]}: {counts(now)}. "
            f"{labels[-1]}: {counts(len(labels) - 1)}.")


def portfolio_reserves_chart(data: dict, fmt: str = "svg") -> Chart:
    """Total free reserves of all libraries by year, one line per scenario.

    ``data`` keys: ``financial_year``, ``last_actual_year`` and ``series`` (an ordered mapping
    of scenario label to a list of totals).
    """
    labels = data["financial_year"]
    figure, ax = _figure(2.7)
    count = len(data["series"])
    for i, ((scenario, totals), (colour, style, marker)) in enumerate(
            zip(data["series"].items(), cycle(SCENARIO_STYLES))):
        # Each line a little thinner than the one before and drawn over it, so a scenario whose
        # totals equal an earlier one's shows as a thin line inside a thicker one instead of vanishing.
        ax.plot(range(len(labels)), totals, color=colour, linestyle=style, marker=marker,
                markersize=3, linewidth=1.2 + 1.8 * (count - i) / count,
                label=_text(scenario), zorder=2 + i)
    ax.axhline(0, color="#000000", linewidth=0.8)
    _forecast_region(ax, _actual_flags(labels, data["last_actual_year"]))
    _year_axis(ax, labels)
    ax.yaxis.set_major_formatter(FuncFormatter(_pounds_axis))
    _legend_below(ax, min(len(data["series"]), 4))
    alt = _portfolio_reserves_alt(data)
    return Chart(_markup(figure, alt, fmt), alt)


def _portfolio_reserves_alt(data: dict) -> str:
    """The total free reserves chart in words: now and at the horizon, per scenario."""
    labels = data["financial_year"]
    now = labels.index(data["last_actual_year"])
    per_scenario = "; ".join(f"{scenario}: {money(totals[now])} in {labels[now]}, {money(totals[-1])} in {labels[-1]}"
                             for scenario, totals in data["series"].items())
    return (f"Line chart of the free reserves of all libraries added together, by year, "
            f"{labels[0]} to {labels[-1]}, one line per scenario. {per_scenario}.")


def portfolio_fan_chart(data: dict, fmt: str = "svg") -> Chart:
    """All libraries' free reserves added together, central path with the simulation's bands.

    ``data`` keys: ``financial_year``, ``last_actual_year``, ``central`` (totals, every year),
    ``fan`` (``p5, p25, p75, p95`` over the forecast years, ``start``) and ``scenario`` (label).
    """
    labels = data["financial_year"]
    actual = _actual_flags(labels, data["last_actual_year"])
    figure, ax = _figure(2.7)
    _fan(ax, data["fan"], actual)
    _plot_actual_and_forecast(ax, data["central"], actual, "All libraries", BLUE, 2.0, "o")
    ax.axhline(0, color="#000000", linewidth=0.8)
    fan = data["fan"]
    alt = (f"Line chart of the free reserves of all libraries added together, {labels[0]} to {labels[-1]}, "
           f"{data['scenario']}, with shaded bands for the simulated futures. In {labels[-1]} the forecast is "
           f"{money(data['central'][-1])}; 9 in 10 futures fall between {money(fan['p5'][-1])} and "
           f"{money(fan['p95'][-1])}.")
    return _money_by_year_chart(figure, ax, labels, actual, alt, fmt)


def tornado_chart(data: dict, fmt: str = "svg") -> Chart:
    """What moves the answer: the change in free reserves at the horizon when each assumption
    moves by its step, one bar a side, the largest swing at the top.

    ``data`` keys: ``labels`` (one a step, largest swing first), ``lower`` and ``higher`` (the
    change in pounds on each side, None where that side was not run), ``horizon`` (label).
    """
    labels = data["labels"]
    figure, ax = plt.subplots(figsize=(WIDTH_INCHES, 0.32 * len(labels) + 0.9))
    figure.subplots_adjust(left=0.27, right=0.97, top=0.97, bottom=0.5 / (0.32 * len(labels) + 0.9) + 0.12)
    rows = list(range(len(labels)))[::-1]
    for side, colour, hatch, offset in (("lower", SKY, "//", 0.18), ("higher", BLUE, "", -0.18)):
        values = [v if v is not None else 0.0 for v in data[side]]
        ax.barh([r + offset for r in rows], values, height=0.34, color=colour, hatch=hatch, edgecolor="white",
                linewidth=0.3, label=f"setting {side}")
        for r, v, given in zip(rows, values, data[side], strict=True):
            if given is not None:
                ax.text(v, r + offset, f" {money(v)} " if abs(v) >= 0.5 else " no change", va="center",
                        ha="left" if v >= 0 else "right", fontsize=6.5, color="#333333")
    ax.axvline(0, color="#000000", linewidth=0.8)
    ax.set_yticks(rows, [textwrap.fill(_text(label), 28) for label in labels], fontsize=7.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", visible=True)
    ax.xaxis.set_major_formatter(FuncFormatter(_pounds_axis))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    low, high = ax.get_xlim()
    span = max(abs(low), abs(high), 1.0) * 1.35  # room for the labels at the bar ends
    ax.set_xlim(-span, span)
    ax.set_xlabel(f"Change in free reserves at the end of {data['horizon']}")
    ax.legend(loc="lower right", fontsize=7, handlelength=2.2)
    alt = _tornado_alt(data)
    return Chart(_markup(figure, alt, fmt), alt)


def _tornado_alt(data: dict) -> str:
    """The tornado in words: each step's change on each side."""
    parts = []
    for label, lower, higher in zip(data["labels"], data["lower"], data["higher"], strict=True):
        sides = [f"{side} {money(v)}" for side, v in (("lower", lower), ("higher", higher)) if v is not None]
        parts.append(f"{label}: {', '.join(sides)}")
    return (f"Bar chart of the change in free reserves at the end of {data['horizon']} when each assumption moves by "
            f"its step, largest first. " + "; ".join(parts) + ".")


CHARTS: dict[str, Callable[[dict, str], Chart]] = {
    "tornado": tornado_chart,
    "portfolio_fan": portfolio_fan_chart,
    "reserves": reserves_chart,
    "income": income_chart,
    "rag": rag_chart,
    "portfolio_reserves": portfolio_reserves_chart,
}
