"""The ablation stage's CPU preset: wall time per arm, against a plain PyTorch loop training the
same model on the same tokens for the same steps.

    python bench/ablation.py                          # the 990-page WARC, 1M tokens, 1 seed
    python bench/ablation.py --budget 250000 --seeds 3

The run: the 990-page WARC (../shared/data/warc) through extract, langid (English), the Gopher, C4
and FineWeb filters and both dedups, a 4k BPE, then an `ablation` of two arms, `raw` (extract)
and `curated` (minhash_dedup), on the CPU preset, one CPU per training (two train at once here),
scored on parts of brown, state_union and inaugural (../shared/data/text). Each phase's time per
arm comes from its done records (`phases/<phase>/_done/*.json`: started, finished). The plain
loop (bench/train.py `plain_loop`: random windows of one in-memory tensor, forward, backward,
AdamW) is timed alone on one thread for 60 steps and scaled to the budget's steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._modules import from_path  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PLAIN_STEPS = 60


def run_config(out: Path, args) -> dict:
    nltk_documents = from_path("test_ablation", ROOT / "tests" / "stages" / "test_ablation.py").nltk_documents
    reference = {}
    for name, every in (("brown", 20), ("state_union", 5), ("inaugural", 3)):
        path = out / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in nltk_documents(SHARED / "text" / f"{name}.zip",
                                                                                       every)))
        reference[name] = str(path)
    filters = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "exact_dedup", "minhash_dedup")
    return {"name": "bench-ablation", "output_dir": str(out / "run"), "seed": 1234,
            "input": {"warc": [str(SHARED / "warc" / "trafilatura-eval-990.warc.gz")]},
            "stages": [{"name": "extract", "type": "extract"}, {"name": "langid", "type": "langid", "languages": ["en"]},
                       *({"name": name, "type": name} for name in filters),
                       {"name": "bpe", "type": "train_tokenizer", "vocab_size": 4096},
                       {"name": "ablation", "type": "ablation", "arms": {"raw": "extract", "curated": "minhash_dedup"},
                        "reference": reference, "budget": args.budget, "seeds": args.seeds, "cloze_tasks": 100}]}


def phase_seconds(stage_dir: Path, phase: str, partition: int) -> float:
    done = json.loads((stage_dir / "phases" / phase / "_done" / f"p{partition:05d}.json").read_text())
    return done["finished"] - done["started"]


def main() -> None:
    import yaml

    import ray

    from crawl2model.catalog import load_config
    from crawl2model.pipeline.runner import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        out = Path(tmp)
        path = out / "run.yaml"
        path.write_text(yaml.safe_dump(run_config(out, args), sort_keys=False))
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        manifest = run(*load_config(path), show_progress=False)
        total = time.perf_counter() - started
        ray.shutdown()
        stage = out / "run" / "stages" / "ablation"
        report = json.loads((stage / "artifact" / "ablation.json").read_text())
        config = load_config(path)[1][-1].config
        import torch

        torch.set_num_threads(1)
        plain = SimpleNamespace(dim=config.model.dim, layers=config.model.n_layers, heads=config.model.n_heads,
                                seq_len=config.seq_len, batch=config.batch_size, steps=PLAIN_STEPS, device="cpu",
                                compile=False)
        rows = []
        for a, arm in enumerate(report["arms"]):
            tokens = stage / "phases" / "arms" / arm / "tokens"
            per_second, _ = from_path("bench_train", ROOT / "bench" / "train.py").plain_loop(tokens, plain)
            partitions = [a * args.seeds + k for k in range(args.seeds)]
            train = sum(phase_seconds(stage, "train", p) for p in partitions) / args.seeds
            score = sum(phase_seconds(stage, "score", p) for p in partitions) / args.seeds
            plain_seconds = report["trained_tokens"] / per_second
            rows.append((arm, report["arms"][arm]["tokens"], phase_seconds(stage, "tokenize", a), train, score,
                         plain_seconds))
    curation = sum(entry.wall_seconds or 0 for name, entry in manifest.stages.items() if name != "ablation")
    print(f"CPU preset: {report['parameters']:,} parameters, {report['steps']} steps of "
          f"{config.batch_size} x {config.seq_len} tokens ({report['trained_tokens']:,} per training), "
          f"{args.seeds} seed(s) per arm, {report['tasks']['n']} cloze tasks; whole run {total:.0f} s "
          f"(stages before the ablation: {curation:.0f} s of stage time, overlapping)")
    print(f"\n{'arm':<9} {'tokens':>9} {'tokenize s':>10} {'train s':>8} {'score s':>8} {'arm s':>7} "
          f"{'plain loop s':>12} {'train vs plain':>14}")
    for arm, tokens, tokenize, train, score, plain_seconds in rows:
        print(f"{arm:<9} {tokens:>9,} {tokenize:>10.1f} {train:>8.1f} {score:>8.1f} "
              f"{tokenize + train * args.seeds + score * args.seeds:>7.1f} {plain_seconds:>12.1f} "
              f"{plain_seconds / train:>13.2f}x")
    print("\ntrain s and score s: per training (mean over seeds); arm s: tokenize + every seed's train and score, "
          "as if one after another; train vs plain: the plain loop's time over ours (1.00x: as fast)")


if __name__ == "__main__":
    main()
