"""The ablation section: what each data arm's models scored (stages/ablation.py, its
artifact/ablation.json): the loss curves of every arm and seed, the score table (mean and spread
over seeds), and each difference between arms set against the seed-to-seed spread."""
from __future__ import annotations

from crawl2model.report import plots
from crawl2model.report.page import Section, esc, facts, table
from crawl2model.report.run import Run

LOWER_IS_BETTER = "bits per byte: lower is better; accuracy: higher is better"


def ablation(run: Run) -> Section:
    parts = []
    for stage in run.of_type("ablation"):
        found = run.artifact_json(stage, "ablation.json")
        if found:
            parts.append(f"<h3>{esc(stage.name)} <small>(ablation)</small></h3>" + _one(stage.name, found))
    return Section("ablation", "Ablation", "".join(parts) or None, "not in this run (no ablation stage)")


def _one(name: str, found: dict) -> str:
    arms, seeds = found["arms"], found["seeds"]
    tasks = found.get("tasks") or {}
    head = facts([("arms", len(arms)), ("seeds", len(seeds)), ("token budget", found["budget"]),
                  ("steps", found["steps"]), ("parameters", found.get("parameters")),
                  ("sequence length", found["seq_len"]), ("tokenizer", found.get("tokenizer")),
                  ("tasks", tasks.get("n"))])
    return head + _curves(name, arms) + _scores(arms, len(seeds)) + _comparisons(found["comparisons"])


def _curves(name: str, arms: dict) -> str:
    """Training loss by step: one colour per arm, one line per seed."""
    fig, (ax,) = plots.figure(width=7, height=2.6)
    for color, (arm, about) in zip(plots.COLORS * 8, arms.items()):
        for k, seed_run in enumerate(about["runs"]):
            if seed_run["losses"]:
                ax.plot(*zip(*seed_run["losses"]), color=color, linewidth=1, alpha=0.8,
                        label=f"{arm} ({about['stage']})" if k == 0 else None)
    ax.set(xlabel="step", title="training loss of every arm, one line per seed")
    ax.legend(loc="upper right")
    return plots.svg(fig, f"ablation-{name}", f"training loss of each arm of {name}")


def _scores(arms: dict, seeds: int) -> str:
    metrics = sorted({key for about in arms.values() for key in about["mean"]}, key=_metric_order)
    rows = [[arm, about["stage"], about["documents"], about["tokens"], about["epochs"],
             *(_with_spread(about, metric, seeds) for metric in metrics)] for arm, about in arms.items()]
    note = (f"mean over {seeds} seeds ± their standard deviation; " if seeds > 1 else "one seed: no spread; ")
    return table(["arm", "stage", "documents", "tokens", "epochs", *metrics], rows, note + LOWER_IS_BETTER
                 + "; val_bits_per_byte is each arm's own held-out text, not comparable across arms")


def _metric_order(metric: str) -> tuple[int, str]:
    return ({"reference": 0, "acc": 2, "acc_norm": 3, "val_bits_per_byte": 4}.get(metric, 1), metric)


def _with_spread(about: dict, metric: str, seeds: int) -> str:
    mean = about["mean"].get(metric)
    if mean is None:
        return ""
    spread = about["std"].get(metric)
    return f"{mean:.4f}" + (f" ± {spread:.4f}" if seeds > 1 and spread is not None else "")


def _comparisons(found: list[dict]) -> str:
    if not found:
        return ""
    rows = [[" vs ".join(c["arms"]), c["metric"], c["difference"], c["spread"],
             {True: "yes", False: "no", None: "(one seed)"}[c["beyond_spread"]], c["says"]] for c in found]
    return table(["arms", "metric", "difference", "seed spread", "beyond the spread", "what it says"], rows,
                 "difference: the first arm's mean minus the second's; beyond the spread: larger than the larger "
                 "of the two arms' standard deviations over seeds")
