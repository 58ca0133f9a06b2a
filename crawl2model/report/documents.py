"""The sections that show documents: deduplication (cluster sizes, duplicate pairs side by side)
and a few documents each stage kept and removed, with their reasons. Rows come from bounded
samples (report/run.py); every text is escaped and cut short (report/page.py)."""
from __future__ import annotations

import difflib
import re
from collections import Counter

import numpy as np

from crawl2model.report import plots
from crawl2model.report.curation import DEDUP_TYPES
from crawl2model.report.page import Section, document, esc, facts, short
from crawl2model.report.run import Run

PAIRS = 3  # duplicate pairs shown per dedup stage
KEPT_SHOWN, REMOVED_SHOWN = 2, 3  # documents shown per stage
CLUSTER_EDGES = [2, 3, 4, 5, 10, 20, 50, 100, 1000, 10000]  # as minhash_dedup bins its cluster sizes


def dedup(run: Run) -> Section:
    parts = []
    for stage in run.of_type(*DEDUP_TYPES):
        stats = stage.stats
        if stats is None:
            continue
        removed = run.sample(stage.files.removed, ["id", "url", "text", "duplicate_of"])
        panels = []
        if "cluster_size" in stats.histograms:
            panels.append(("documents per cluster (all)", stats.histograms["cluster_size"], []))
        elif removed is not None and "duplicate_of" in removed.column_names:  # exact_dedup bins none: count a sample
            sizes = np.array(list(Counter(removed["duplicate_of"].to_pylist()).values())) + 1
            counts = np.bincount(np.searchsorted(CLUSTER_EDGES, sizes, side="right") - 1, minlength=len(CLUSTER_EDGES))
            panels.append((f"documents per cluster (sample of {removed.num_rows:,} removed)",
                           {"edges": CLUSTER_EDGES, "counts": counts.tolist()}, []))
        if "pair_jaccard" in stats.histograms:
            threshold = stage.option("threshold")
            panels.append(("Jaccard of candidate pairs checked", stats.histograms["pair_jaccard"],
                           [(f"threshold {threshold}", float(threshold))] if threshold is not None else []))
        parts.append(f"<h3>{esc(stage.name)} <small>({esc(stage.type)})</small></h3>"
                     + facts([("documents in", stats.docs_in), ("duplicates removed", stats.docs_in - stats.docs_out),
                              *sorted(stats.counters.items())]))
        if panels:
            fig, axes = plots.figure(len(panels), len(panels), width=3.6 * len(panels), height=1.9)
            for ax, (title, hist, rules) in zip(axes, panels):
                plots.binned(ax, hist["edges"], hist["counts"], rules)
                ax.set_title(title, fontsize=8)
            parts.append(plots.svg(fig, f"dedup-{stage.name}", f"duplicate clusters of {stage.name}"))
        parts.append(pairs(run, stage, removed))
    body = "".join(parts)
    return Section("dedup", "Deduplication", body or None, "not in this run (no exact_dedup or minhash_dedup stage)")


def pairs(run: Run, stage, removed) -> str:
    """A few removed duplicates beside the document each duplicates, with the words that differ marked."""
    if removed is None or "duplicate_of" not in removed.column_names:
        return ""
    chosen = [row for row in removed.slice(0, 50).to_pylist() if row.get("duplicate_of")][:PAIRS]
    kept = run.rows_of(stage.files.kept, {row["duplicate_of"] for row in chosen}, ["id", "url", "text"])
    cells = []
    for row in chosen:
        original = kept.get(row["duplicate_of"])
        if original is None:
            continue
        left, right = marked(original.get("text"), row.get("text"))
        cells.append(f'<div class="pair">{_side(original, "kept", left)}{_side(row, "removed", right)}</div>')
    return ("<p class=note>duplicates beside the document kept in their place (marked: words that differ)</p>"
            + "".join(cells)) if cells else ""


def _side(row: dict, state: str, text: str) -> str:
    tag = "kept" if state == "kept" else "reason"
    return (f'<div class="doc"><div class="meta"><span class="{tag}">{state}</span> <span class="id">{esc(row["id"])}'
            f'</span> {esc(row.get("url"))}</div><pre>{text}</pre></div>')


def marked(a: str | None, b: str | None) -> tuple[str, str]:
    """Both texts (cut short), escaped, with the words that differ between them in <mark>."""
    a_words, b_words = re.split(r"(\s+)", short(a, 800)), re.split(r"(\s+)", short(b, 800))
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a_words, b_words, autojunk=False).get_opcodes():
        one, two = esc("".join(a_words[i1:i2])), esc("".join(b_words[j1:j2]))
        left.append(one if op == "equal" or not one.strip() else f"<mark>{one}</mark>")
        right.append(two if op == "equal" or not two.strip() else f"<mark>{two}</mark>")
    return "".join(left), "".join(right)


def examples(run: Run) -> Section:
    parts = []
    for stage in run.document_stages():
        kept = run.sample(stage.files.kept, rows=KEPT_SHOWN, max_files=1)
        removed = run.sample(stage.files.removed, rows=60)
        rows = removed.to_pylist() if removed is not None else []
        seen, first, again = set(), [], []  # one document of each reason first, then more of them
        for row in rows:
            (again if row.get("drop_reason") in seen else first).append(row)
            seen.add(row.get("drop_reason"))
        shown = (first + again)[:REMOVED_SHOWN]
        docs = (kept.to_pylist() if kept is not None else []) + shown
        if docs:
            parts.append(f"<details><summary>{esc(stage.name)} ({esc(stage.type)}): "
                         f"{len(docs) - len(shown)} kept, {len(shown)} removed</summary>"
                         + "".join(document(row) for row in docs) + "</details>")
    body = "<p class=note>the first documents of each stage's shards; texts cut short</p>" + "".join(parts)
    return Section("examples", "Documents kept and removed", body if parts else None)
