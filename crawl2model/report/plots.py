"""Figures as inline SVG.

matplotlib's object API without pyplot (no global figure state), text kept as SVG text (a few
bytes per label instead of glyph outlines, and searchable in the page), and a fixed hash salt and
no date in the metadata, so the same run gives the same bytes. Every drawing happens inside
`style()`, which the page sets once around all sections.
"""
from __future__ import annotations

import html
import io
import re

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

BLUE, ORANGE, RED, GREY = "#3b6ea8", "#e08a4f", "#c0392b", "#9aa5b1"
COLORS = [BLUE, ORANGE, "#4e9a6a", "#8e6bb5", "#c4a23a", "#5aa5b8", "#b5577b", "#7d7d7d"]
STYLE = {
    "svg.fonttype": "none", "text.parse_math": False,  # a `$` in a stage name is text, not TeX
    "font.family": "sans-serif", "font.size": 8, "axes.titlesize": 9, "axes.titleweight": "bold",
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#888888",
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "axes.grid": True, "axes.grid.axis": "y", "grid.color": "#e5e7eb",
    "axes.axisbelow": True, "legend.frameon": False, "legend.fontsize": 7,
    "xtick.bottom": False, "ytick.left": False,  # labels without tick marks: a fifth of each figure's bytes
}


def style():
    return matplotlib.rc_context(STYLE)


def figure(panels: int = 1, cols: int = 1, width: float = 9.5, height: float = 2.2):
    """A figure of `panels` axes, `cols` per row; unused cells of the last row are hidden."""
    rows = -(-panels // cols)
    fig = Figure(figsize=(width, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, list(axes[:panels])


def svg(fig: Figure, key: str, label: str) -> str:
    """The figure as an <svg> element. `key` salts matplotlib's ids (clip paths, markers), so two
    figures of one page never share one; its numbered group ids, the same in every figure, go."""
    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": key}):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]  # no XML prolog or DOCTYPE inside HTML
    text = re.sub(r' id="[\w.]+_\d+"', "", text)
    # smaller: the page's CSS gives the font once, not every label; a tenth of a point is precise enough
    text = re.sub(r"font-family: [^;\"]*;? ?", "", text)
    text = re.sub(r' transform="rotate\(-0 [^"]*\)"', "", text)  # a rotation by 0 degrees
    text = re.sub(r'( (?:d|x|y|x1|x2|y1|y2|width|height|viewBox|transform)=")([^"]*)"', _rounded, text)
    text = re.sub(r"\s*\n\s*", "\n", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)


def _rounded(match: re.Match) -> str:
    numbers = re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()):.1f}".rstrip("0").rstrip("."), match.group(2))
    return f'{match.group(1)}{numbers}"'


def number(value: float) -> str:
    """A compact axis label: 0.05, 50, 2k, 1M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def binned(ax, edges: list[float], counts: list[int], thresholds: list[tuple[str, float]] = (),
           color: str = BLUE, label: str | None = None) -> None:
    """A histogram of stats.json: counts[i] holds the values in [edges[i], edges[i+1]), the last
    bin those >= its edge. Bins are drawn equally wide, so log-spaced edges (0, 1, 2, 5, 10, ...)
    read as well as ratios, and each threshold (rule, value) is a dashed line at its place."""
    n = len(counts)
    ax.stairs(counts, np.arange(n + 1), fill=True, color=color, alpha=0.85, label=label)
    step = max(1, -(-n // 6))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [number(edges[i]) for i in ticks])
    ax.set_xlim(0, n)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # counts of documents
    for rule, value in thresholds:
        x = float(np.clip(np.interp(value, edges, np.arange(len(edges))), 0, n))
        ax.axvline(x, color=RED, linestyle="--", linewidth=1)
        ax.annotate(rule, (x, 1), xycoords=("data", "axes fraction"), xytext=(2, -2), textcoords="offset points",
                    va="top", fontsize=7, color=RED)


def bars(ax, labels: list[str], values: list[float], color=BLUE, fmt=lambda v: f"{v:,.0f}",
         more: list[float] | None = None) -> None:
    """Horizontal bars, top to bottom in the order given, each with its value written after it;
    `more` (orange) is stacked after each, e.g. what a stage removed after what it kept."""
    y = np.arange(len(labels))
    more = more or [0] * len(values)
    ax.barh(y, values, color=color)
    if any(more):
        ax.barh(y, more, left=values, color=ORANGE)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    value_grid(ax)
    ends = [a + b for a, b in zip(values, more)]
    top = max(ends, default=0) or 1
    for i, (value, end) in enumerate(zip(values, ends)):
        ax.text(end + top * 0.01, i, fmt(value), va="center", fontsize=7)
    ax.set_xlim(0, top * 1.15)


def value_grid(ax) -> None:
    """Grid lines across the values of horizontal bars only, not through the bars."""
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", visible=True)


def log_x(ax) -> None:
    """A log x axis labelled 10, 100, 1k (no TeX: math text is off, so that names stay text)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: number(value)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def log_bins(values: np.ndarray, count: int = 30) -> np.ndarray:
    """Bins evenly spaced in log10 over positive `values` (lengths span orders of magnitude)."""
    low, high = max(1.0, float(values.min())), max(2.0, float(values.max()))
    return np.logspace(np.log10(low), np.log10(high * 1.001), count)
