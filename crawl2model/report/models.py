"""The sections about what a run trains: classifiers, the tokenizer and token shards, and the
language model (pretrain, sft, dpo). Each reads its stage's artifact files: model.json,
info.json and index.json, metrics.jsonl."""
from __future__ import annotations

import math

from crawl2model.report import plots
from crawl2model.report.curation import SCORE_TYPES, thresholds
from crawl2model.report.page import Section, esc, facts, table
from crawl2model.report.run import Run


def classifiers(run: Run) -> Section:
    parts = []
    for stage in run.of_type("train_classifier"):
        meta = run.artifact_json(stage, "model.json")
        if not meta:
            continue
        metrics, data = meta.get("metrics") or {}, meta.get("data") or {}
        parts.append(f"<h3>{esc(stage.name)} <small>(train_classifier, positive label "
                     f"{esc(meta.get('positive'))})</small></h3>"
                     + facts([*((f"examples {k}", v) for k, v in sorted((data.get("examples") or {}).items())),
                              ("training", data.get("train")), ("held out", data.get("validation")),
                              ("held-out ROC AUC", metrics.get("roc_auc"))]))
        points = [(name, metrics[key]) for name, key in (("at 0.5", "at_0.5"), ("best F1", "best_f1"))
                  if metrics.get(key)]
        if points:
            parts.append(table(["held out", "threshold", "precision", "recall", "F1", "called positive"],
                               [[name, p["threshold"], p["precision"], p["recall"], p["f1"], p["positive_rate"]]
                                for name, p in points]))
        curve = metrics.get("curve") or []
        if curve:
            fig, (ax,) = plots.figure(width=5, height=2.2)
            x = [p["threshold"] for p in curve]
            for key in ("precision", "recall", "f1"):
                ax.plot(x, [p[key] for p in curve], label=key, linewidth=1.5)
            if metrics.get("best_f1"):
                best = metrics["best_f1"]["threshold"]
                ax.axvline(best, color=plots.RED, linestyle="--", linewidth=1, label=f"best F1 at {best:.3g}")
            ax.set(xlabel="threshold", ylim=(0, 1.05), title="held-out precision, recall and F1 by threshold")
            ax.legend(loc="lower left")
            parts.append(plots.svg(fig, f"curve-{stage.name}", f"threshold curve of {stage.name}"))
    scored = [(stage, name) for stage in run.of_type(*SCORE_TYPES) if stage.stats
              for name in sorted(stage.stats.histograms) if name.endswith("_score")]
    if scored:
        fig, axes = plots.figure(len(scored), min(3, len(scored)), height=1.9)
        for ax, (stage, name) in zip(axes, scored):
            hist = stage.stats.histograms[name]
            plots.binned(ax, hist["edges"], hist["counts"], thresholds(stage).get(name, []))
            ax.set_title(f"{stage.name}: {name}", fontsize=8)
        parts.append("<h3>Scores</h3><p class=note>every document each scoring stage scored; dashed: its threshold "
                     "(none when it only annotates)</p>" + plots.svg(fig, "scores", "classifier scores"))
    return Section("classifiers", "Classifiers", "".join(parts) or None,
                   "not in this run (no train_classifier, quality_classifier or toxicity_classifier stage)")


def tokenizer(run: Run) -> Section:
    parts = []
    for stage in run.of_type("train_tokenizer"):
        info = run.artifact_json(stage, "info.json") or {}
        parts.append(f"<h3>{esc(stage.name)} <small>(train_tokenizer)</small></h3>"
                     + facts([("vocabulary", info.get("vocab_size")), ("trained on documents", info.get("documents")),
                              ("bytes", info.get("bytes")), ("special tokens", len(info.get("special_tokens") or [])),
                              ("seconds", info.get("train_seconds"))]))
    for stage in run.of_type("tokenize"):
        index = run.artifact_json(stage, "index.json")
        if not index:
            continue
        splits = index.get("splits") or {}
        rows = [[name, len(s["shards"]), s["documents"], s["tokens"], s.get("text_bytes"),
                 _ratio(s["tokens"], s["documents"]), _ratio(s.get("text_bytes"), s["tokens"] - s["documents"])]
                for name, s in splits.items()]
        total = [sum(s[k] or 0 for s in splits.values()) for k in ("tokens", "documents", "text_bytes")]
        parts.append(f"<h3>{esc(stage.name)} <small>(tokenize)</small></h3>"
                     + facts([("vocabulary", index.get("vocab_size")), ("dtype", index.get("dtype")),
                              ("tokens", total[0]), ("bytes per token", _ratio(total[2], total[0] - total[1]))])
                     + table(["split", "shards", "documents", "tokens", "text bytes", "tokens/doc", "bytes/token"], rows,
                             "bytes per token: UTF-8 bytes of text per token, the end-of-document token not counted"))
        fig, axes = plots.figure(2, 2, width=8, height=0.3 * len(rows) + 0.9)
        for ax, column, title in zip(axes, (3, 2), ("tokens", "documents")):
            plots.bars(ax, [r[0] for r in rows], [r[column] for r in rows])
            ax.set_title(f"{title} per split")
        parts.append(plots.svg(fig, f"tokens-{stage.name}", f"tokens per split of {stage.name}"))
    return Section("tokenizer", "Tokenizer and tokens", "".join(parts) or None,
                   "not in this run (no train_tokenizer or tokenize stage)")


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def training(run: Run) -> Section:
    parts = []
    for stage in run.stages:
        rows = run.artifact_lines(stage, "metrics.jsonl")
        if not rows:
            continue
        groups: dict[str, list[str]] = {}  # a measure and its held-out twin (val_loss, val/loss) share a panel
        for key in dict.fromkeys(k for row in rows for k in row):
            values = [row.get(key) for row in rows]
            if key != "step" and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                groups.setdefault(key.removeprefix("val/").removeprefix("val_"), []).append(key)
        names = sorted(groups, key=lambda name: name != "loss")  # loss first, then as logged
        fig, axes = plots.figure(len(names), min(3, len(names)), height=1.9)
        for ax, name in zip(axes, names):
            for key in groups[name]:
                points = [(row.get("step", i), row[key]) for i, row in enumerate(rows) if _finite(row.get(key))]
                held = key != name
                if points:  # held-out values are a few points: dots; so is a short run
                    ax.plot(*zip(*points), marker="o" if held or len(points) < 3 else None, markersize=3,
                            linewidth=1.5, label="held out" if held else "training")
            if len(groups[name]) > 1:
                ax.legend()
            ax.set_title(name, fontsize=8)
        last = {key: row[key] for row in rows for key in row if _finite(row[key])}
        parts.append(f"<h3>{esc(stage.name)} <small>({esc(stage.type)})</small></h3>"
                     + facts([("steps", last.get("step")), ("last loss", last.get("loss")),
                              *((f"last {k}", v) for k, v in last.items() if k.startswith("val"))])
                     + plots.svg(fig, f"training-{stage.name}", f"training metrics of {stage.name}"))
    return Section("training", "Training", "".join(parts) or None, "not in this run (no stage logged metrics.jsonl)")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
