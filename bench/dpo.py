"""DPO training speed: train/align.py vs TRL's DPOTrainer, same model, pairs and batch, on CPU.

    python bench/dpo.py [--steps 30] [--pairs 400]

Model: a Llama (dim 128, 4 layers; vocabulary 4096 from a BPE trained on the pairs), random
weights, saved as our checkpoint and exported to the Hugging Face format, so both start from the
same weights. Pairs: the first `--pairs` of ../shared/data/preference-hh-rlhf, split into prompt,
chosen and rejected. Both: batch 8, at most 128 tokens per sequence, beta 0.1, the reference
model's log-probabilities computed every step (no precomputation), no evaluation; the first 3
steps are warm-up. Ours wraps the prompt in the chat template (3 marker tokens more per pair);
TRL reads the text as it is.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

HH = Path(__file__).resolve().parents[2] / "shared/data/preference-hh-rlhf/harmless-base-test.jsonl.gz"
WARMUP = 3


def prepare(folder: Path, pairs: int) -> tuple[Path, Path, Path, Path]:
    """(our checkpoint, the HF folder, the tokenizer, the pairs as prompt/chosen/rejected JSONL)."""
    from crawl2model.model.hf import export_hf
    from crawl2model.model.llama import Llama, LlamaConfig
    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe
    from crawl2model.train import checkpoint
    from crawl2model.train.chat import split_pair

    rows = [json.loads(line) for line in gzip.open(HH, "rt")][:pairs]
    split = [split_pair(row["chosen"], row["rejected"]) for row in rows]
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in split if c and r and c != r))
    tokenizer = folder / "tokenizer.json"
    train_bpe(iter([[row["chosen"] for row in rows]]), TrainTokenizerConfig(vocab_size=4096)).save(str(tokenizer))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, dim=128, n_layers=4, n_heads=4, max_seq_len=256)
    model = Llama(config)
    start = checkpoint.save(folder / "start", 0, {"model": model.state_dict()}, {"model": config.to_dict()})
    hf = export_hf(model, folder / "hf", tokenizer)
    return start, hf, tokenizer, data


def ours(start: Path, tokenizer: Path, data: Path, out: Path, steps: int) -> float:
    from crawl2model.train.align import DPOConfig, train_dpo

    marks = []
    config = DPOConfig(steps=steps + WARMUP, batch_size=8, lr=1e-4, warmup_steps=0, max_len=128, beta=0.1,
                       val_fraction=0, log_interval=1, eval_interval=10**9)
    train_dpo(start, [data], tokenizer, out, config, log=lambda line: marks.append(time.perf_counter()))
    steps_marks = marks[1:]  # the first line reports the pairs read
    return (len(steps_marks) - 1 - WARMUP) / (steps_marks[-1] - steps_marks[WARMUP])


def trl(hf: Path, data: Path, out: Path, steps: int) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    tokenizer = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    args = DPOConfig(output_dir=str(out), per_device_train_batch_size=8, max_steps=steps + WARMUP, learning_rate=1e-4,
                     beta=0.1, max_length=128, report_to="none", logging_steps=10**6, save_strategy="no",
                     use_cpu=True, dataloader_num_workers=0, lr_scheduler_type="constant", warmup_steps=0)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=[Clock()])
    trainer.train()
    return (len(marks) - 1 - WARMUP) / (marks[-1] - marks[WARMUP])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    import trl as trl_package

    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp:
        start, hf, tokenizer, data = prepare(Path(tmp), args.pairs)
        theirs = trl(hf, data, Path(tmp) / "trl", args.steps)
        mine = ours(start, tokenizer, data, Path(tmp) / "ours", args.steps)
    print(f"\n{args.steps} timed steps of 8 pairs, max 128 tokens, CPU with {torch.get_num_threads()} threads")
    print(f"{'system':<36} {'steps/s':>8} {'vs TRL':>8}")
    print(f"{'TRL ' + trl_package.__version__ + ' DPOTrainer':<36} {theirs:>8.2f} {1:>7.2f}x")
    print(f"{'crawl2model train/align.py':<36} {mine:>8.2f} {mine / theirs:>7.2f}x")


if __name__ == "__main__":
    main()
