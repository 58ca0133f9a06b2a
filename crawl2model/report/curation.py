"""The sections about documents: the funnel, why documents were removed, languages and lengths.

Counts come from each stage's stats.json (every document); histograms of measured values too,
since every filter bins each value it measures there. Only what stats.json cannot say (languages
after curation, document lengths, removed rows' details) comes from bounded samples of shards.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pyarrow.compute as pc

from crawl2model.report import plots
from crawl2model.report.page import Section, esc, table
from crawl2model.report.run import Run, StageView

DEDUP_TYPES = ("exact_dedup", "minhash_dedup")
SCORE_TYPES = ("quality_classifier", "toxicity_classifier")
RULE = re.compile(r"([A-Za-z_]\w*?)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)$")
# a measured drop_detail: "1502963 bytes > max_html_bytes 1000000" (value, comparison, limit)
MEASURED = re.compile(r"^[\w.]+=\S+ (<=|>=|<|>) ")  # a filter's `alpha_words=0.62 < 0.8`: its histogram is in stats.json
DETAIL = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\D.*?(<=|>=|<|>)\D*?(-?\d+(?:\.\d+)?)\s*$")
TOP_REASONS = 12  # per stage; the rest are summed as "other"
MIN_VALUES = 5  # measured details a histogram needs (fewer are listed)


def funnel(run: Run) -> Section:
    rows, shown = [], []
    for stage in run.stages:
        stats, carried = stage.stats, stage.makes_artifact  # a model's stage passes its documents on
        if stats is None:
            rows.append([stage.name, stage.type, stage.entry.status] + [""] * 6)
            continue
        rows.append([stage.name, stage.type, stage.entry.status, stats.docs_in, stats.docs_out,
                     stats.docs_in - stats.docs_out, "" if carried else stats.bytes_in,
                     "" if carried else stats.bytes_out, tokens(run, stage) or ""])
        if not carried:
            shown.append(stage)
    if not rows:
        return Section("funnel", "Funnel", None)
    body = table(["stage", "type", "status", "docs in", "docs out", "removed", "bytes in", "bytes out", "tokens"], rows)
    if shown:
        fig, (docs, size) = plots.figure(2, 2, height=0.28 * len(shown) + 0.9)
        names = [s.name for s in shown]
        for ax, into, out, unit in ((docs, "docs_in", "docs_out", 1), (size, "bytes_in", "bytes_out", 1e6)):
            kept = [getattr(s.stats, out) / unit for s in shown]
            lost = [max(0, getattr(s.stats, into) - getattr(s.stats, out)) / unit for s in shown]
            plots.bars(ax, names, kept, fmt=lambda v, unit=unit: f"{v:,.0f}" if unit == 1 else f"{v:,.2f}", more=lost)
        docs.set_title("documents out (orange: removed)")
        size.set_title("MB of content out (orange: in - out)")
        size.set_yticklabels([])
        body = (plots.svg(fig, "funnel", "documents and bytes through each stage") + body
                + '<p class="note">content: HTML before extract, text after; a stage that rewrites text '
                '(c4_quality cuts lines) lowers it without removing documents</p>')
    return Section("funnel", "Funnel", body)


def tokens(run: Run, stage: StageView) -> int | None:
    index = run.artifact_json(stage, "index.json") if stage.type == "tokenize" else None
    return sum(split["tokens"] for split in index["splits"].values()) if index else None


def thresholds(stage: StageView) -> dict[str, list[tuple[str, float]]]:
    """Histogram name -> (rule, value) of each threshold the stage's reasons and rule counters name
    (`gopher_quality:words<50`); `score<0.65` of langid finds the histogram `language_score`."""
    stats = stage.stats
    keys = [*stats.removed_by_reason, *(k[len("rule:"):] for k in stats.counters if k.startswith("rule:"))]
    found: dict[str, set] = {}
    for key in keys:
        match = RULE.search(key.rsplit(":", 1)[-1])
        if match:
            metric, op, value = match.groups()
            names = [metric] if metric in stats.histograms else [h for h in stats.histograms if h.endswith("_" + metric)]
            if len(names) == 1:
                found.setdefault(names[0], set()).add((f"{op}{value}", float(value)))
    return {name: sorted(rules, key=lambda r: r[1]) for name, rules in found.items()}


def removals(run: Run) -> Section:
    parts = []
    reasons = [(s, sorted(s.stats.removed_by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
               for s in run.stages if s.stats and s.stats.removed_by_reason]
    if reasons:
        labels, counts, colors = [], [], []
        for i, (stage, items) in enumerate(reasons):
            rest = items[TOP_REASONS:]
            items = items[:TOP_REASONS] + ([(f"other ({len(rest)} reasons)", sum(c for _, c in rest))] if rest else [])
            labels += [reason if reason.split(":")[0] in (stage.name, stage.type) else f"{stage.name} · {reason}"
                       for reason, _ in items]
            counts += [count for _, count in items]
            colors += [plots.COLORS[i % len(plots.COLORS)]] * len(items)
        fig, (ax,) = plots.figure(height=0.24 * len(labels) + 0.7)
        plots.bars(ax, labels, counts, color=colors)
        ax.set_title("documents removed, by stage and reason")
        parts.append(plots.svg(fig, "reasons", "documents removed by stage and reason"))
    parts += [measured(stage) for stage in run.stages
              if stage.stats and stage.stats.histograms and stage.type not in DEDUP_TYPES + SCORE_TYPES]
    parts.append(details(run))
    body = "".join(p for p in parts if p)
    return Section("removals", "Removal reasons and measured values", body or None,
                   "not in this run (no stage removed or measured anything)")


def measured(stage: StageView) -> str:
    """Every histogram of a stage in one figure, thresholds first."""
    hists, rules = stage.stats.histograms, thresholds(stage)
    names = sorted(hists, key=lambda name: (name not in rules, name))
    cols = min(4, len(names))
    fig, axes = plots.figure(len(names), cols, width=2.4 * cols, height=1.6)
    for ax, name in zip(axes, names):
        plots.binned(ax, hists[name]["edges"], hists[name]["counts"], rules.get(name, []))
        ax.set_title(name, fontsize=8)
    return (f"<h3>{esc(stage.name)} <small>({esc(stage.type)})</small></h3>"
            f'<p class="note">every value the stage measured, over all {stage.stats.docs_in:,} documents it judged; '
            f"dashed: the thresholds its rules removed documents at</p>"
            + plots.svg(fig, f"measured-{stage.name}", f"measured values of {stage.name}"))


def details(run: Run) -> str:
    """What removed rows carry in drop_detail, from a sample of each stage's removed shards:
    a histogram with the threshold where the detail is a measure (`1502963 bytes > max_html_bytes
    1000000`), else the most common details."""
    rows, figures = [], []
    for stage in run.document_stages():
        sample = run.sample(stage.files.removed, ["drop_reason", "drop_detail"])
        if sample is None or "drop_detail" not in sample.column_names:
            continue
        by_reason: dict[str, list[str]] = {}
        for reason, detail in zip(sample["drop_reason"].to_pylist(), sample["drop_detail"].to_pylist()):
            if detail and not MEASURED.match(detail):  # a filter's value: drawn above from all documents
                by_reason.setdefault(reason, []).append(detail)
        for reason, found in sorted(by_reason.items()):
            parsed = [m.groups() for m in map(DETAIL.match, found) if m]
            if len(parsed) >= MIN_VALUES:
                values = np.array([float(v) for v, _, _ in parsed])
                fig, (ax,) = plots.figure(width=5, height=1.8)
                ax.hist(values, bins=plots.log_bins(values, 20), color=plots.BLUE)
                plots.log_x(ax)
                op, limit = parsed[0][1], float(parsed[0][2])
                ax.axvline(limit, color=plots.RED, linestyle="--", linewidth=1)
                ax.set_title(f"{stage.name} · {reason}: measured value ({op}{limit:g} removed)")
                figures.append(plots.svg(fig, f"detail-{stage.name}-{reason}", f"drop_detail of {reason}"))
            else:
                rows += [[stage.name, reason, detail, count] for detail, count in Counter(found).most_common(5)]
    if not rows and not figures:
        return ""
    return ("<h3>Details of removed documents</h3><p class=note>from a sample of each stage's removed shards</p>"
            + "".join(figures) + (table(["stage", "reason", "drop_detail", "in sample"], rows) if rows else ""))


def languages(run: Run) -> Section:
    langid = [s for s in run.of_type("langid") if s.stats]
    before = Counter({k.split(":", 1)[1]: v for k, v in langid[0].stats.counters.items()
                      if k.startswith("language:")}) if langid else Counter()
    final = run.document_stages()[-1:]
    sample = run.sample(final[0].files.kept, ["language"]) if final else None
    has_language = sample is not None and "language" in sample.column_names
    after = Counter(sample["language"].to_pylist()) if has_language else Counter()
    if not before and not after:
        return Section("languages", "Language mix", None, "not in this run (no langid stage)")
    order = [lang for lang, _ in (before or after).most_common(15)]
    series = ([(f"into {langid[0].name} (all {sum(before.values()):,} documents)", before)] if before else []) + (
        [(f"after {final[0].name} (sample of {sum(after.values()):,})", after)] if after else [])
    fig, (ax,) = plots.figure(width=7, height=0.22 * len(order) + 0.8)
    y, height = np.arange(len(order)), 0.8 / len(series)
    for i, (label, counts) in enumerate(series):
        total = sum(counts.values())
        ax.barh(y + i * height, [100 * counts[lang] / total for lang in order], height, label=label)
    ax.set_yticks(y + height * (len(series) - 1) / 2, [str(lang) for lang in order])
    ax.invert_yaxis()
    plots.value_grid(ax)
    ax.set_xlabel("% of documents")
    ax.legend(loc="lower right")
    rows = [[lang] + [counts.get(lang, 0) for _, counts in series] for lang in order]
    return Section("languages", "Language mix", plots.svg(fig, "languages", "language mix")
                   + table(["language"] + [label for label, _ in series], rows))


def lengths(run: Run) -> Section:
    """Characters per document in the first stage that has text and after the last one."""
    stages = run.document_stages()
    samples = []
    for stage in stages:
        found = run.sample(stage.files.kept, ["text"])
        if found is not None and "text" in found.column_names:
            samples.append((stage, found))
            break
    if samples and stages[-1] is not samples[0][0]:
        samples.append((stages[-1], run.sample(stages[-1].files.kept, ["text"])))
    samples = [(s, pc.utf8_length(t["text"].drop_null()).to_numpy()) for s, t in samples if t is not None]
    samples = [(s, found) for s, found in samples if len(found)]
    if not samples:
        return Section("lengths", "Document lengths", None, "not in this run (no stage kept documents with text)")
    values = np.concatenate([v for _, v in samples])
    bins = plots.log_bins(values)
    fig, (ax,) = plots.figure(width=8, height=2.4)
    for (stage, found), color in zip(samples, (plots.GREY, plots.BLUE)[-len(samples):]):  # the curated: blue
        ax.hist(found, bins=bins, histtype="step" if color == plots.GREY else "stepfilled", alpha=0.8, color=color,
                linewidth=1.5, label=f"kept by {stage.name}: sample of {len(found):,}, median {np.median(found):,.0f}")
    plots.log_x(ax)
    ax.set_xlabel("characters per document")
    ax.legend(loc="upper left")
    return Section("lengths", "Document lengths", plots.svg(fig, "lengths", "document lengths before and after curation"))
