"""`ablation.json`, what the `ablation` stage (stages/ablation.py) found: per arm, its documents and
tokens, how many epochs the budget made of them, each seed's losses and scores, and each score's
mean and spread over seeds; then, for each pair of arms and each reference set, whether the
difference of their mean bits per byte is larger than the seed-to-seed spread.

The spread of a score is its sample standard deviation over an arm's seeds (n - 1 in the
denominator); a difference counts as beyond it when it is larger than the larger of the two arms'
spreads. With one seed there is no spread: `beyond_spread` is null and says so.

Scores (lower bits per byte is better, higher accuracy is better):
- `val_bits_per_byte`: of the arm's own held-out documents (each arm's own: not comparable across arms);
- `reference:<name>`: of each reference set, and `reference`, their mean (comparable across arms);
- `acc`, `acc_norm`: multiple-choice accuracy on the tasks (the same tasks for every arm).
"""
from __future__ import annotations

import itertools
import statistics

SPREAD = "sample standard deviation over seeds (n - 1); none with one seed"
DIGITS = 6


def ablation_report(config, arms_made: list[dict], runs: dict[tuple[str, int], dict], tasks: dict) -> dict:
    """The report as a JSON-able dict. `arms_made`: the tokenize phase's row per arm; `runs`: per
    (arm, seed index), the train phase's row with its `scores`, `metrics` (metrics.jsonl's lines)
    and `seconds`; `tasks`: what the tasks were (ablation.Ablation.tasks_for)."""
    made = {row["arm"]: row for row in arms_made}
    first = next(iter(runs.values()))
    arms = {}
    for arm, stage in config.arms.items():
        row = made[arm]
        seeds = [runs[arm, index] for index in range(config.seeds)]
        scored = [with_reference_mean(run.get("scores", {})) for run in seeds]
        trained = seeds[0]["trained_tokens"]
        arms[arm] = {
            "stage": stage, "documents": row["documents"], "tokens": row["tokens"],
            "train_documents": row["train_documents"], "val_documents": row["val_documents"],
            "val_tokens": row["val_tokens"], "text_bytes": row["text_bytes"], "trained_tokens": trained,
            "epochs": round(trained / row["tokens"], 3) if row["tokens"] else None,
            "runs": [{"seed": run["seed"], "steps": run["steps"], "seconds": run.get("seconds"),
                      "losses": [[m["step"], m["loss"]] for m in run.get("metrics", []) if "loss" in m],
                      "val_losses": [[m["step"], m["val_loss"]] for m in run.get("metrics", []) if "val_loss" in m],
                      "scores": {k: round(v, DIGITS) for k, v in scores.items()}}
                     for run, scores in zip(seeds, scored)],
            "mean": summary(scored, statistics.fmean),
            "std": summary(scored, spread) if config.seeds > 1 else {},
        }
    return {
        "budget": config.budget, "trained_tokens": first["trained_tokens"], "steps": first["steps"],
        "seeds": [(config.seed or 0) + index for index in range(config.seeds)],
        "model": config.model.model_dump(mode="json"), "parameters": first.get("parameters"),
        "seq_len": config.seq_len, "batch_size": config.batch_size,
        "tokenizer": config.trained_by or config.tokenizer, "val_fraction": config.val_fraction,
        "reference": config.reference, "tasks": tasks, "spread": SPREAD,
        "arms": arms, "comparisons": comparisons(arms, config),
    }


def with_reference_mean(scores: dict) -> dict:
    """The scores and `reference`, the mean bits per byte over the reference sets."""
    sets = [value for key, value in scores.items() if key.startswith("reference:")]
    return {**scores, "reference": statistics.fmean(sets)} if sets else dict(scores)


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summary(scored: list[dict], how) -> dict:
    keys = sorted({key for scores in scored for key in scores})
    return {key: round(how([scores[key] for scores in scored if key in scores]), DIGITS) for key in keys}


def comparisons(arms: dict, config) -> list[dict]:
    """Each pair of arms, on each reference set (and their mean, when there are several)."""
    metrics = [f"reference:{name}" for name in config.reference] + (["reference"] if len(config.reference) > 1 else [])
    found = []
    for (a, first), (b, second) in itertools.combinations(arms.items(), 2):
        for metric in metrics:
            if metric not in first["mean"] or metric not in second["mean"]:
                continue
            means = first["mean"][metric], second["mean"][metric]
            difference = round(means[0] - means[1], DIGITS)
            lower = a if difference < 0 else b if difference > 0 else None
            entry = {"metric": metric, "arms": [a, b], "means": list(means), "difference": difference,
                     "lower": lower}
            if config.seeds > 1:
                width = max(first["std"][metric], second["std"][metric])
                beyond = abs(difference) > width
                entry.update(spread=width, beyond_spread=beyond,
                             says=f"{lower or 'neither'} is lower by {abs(difference):.4f} bits per byte, "
                                  f"{'more' if beyond else 'not more'} than the seed spread ({width:.4f})")
            else:
                entry.update(spread=None, beyond_spread=None,
                             says=f"{lower or 'neither'} is lower by {abs(difference):.4f} bits per byte; one seed "
                                  "per arm: no spread to compare the difference with (set seeds: 3)")
            found.append(entry)
    return found
