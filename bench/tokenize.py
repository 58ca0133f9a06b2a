"""BPE training and tokenization: crawl2model vs raw HF `tokenizers` vs datatrove, side by side in one run.

    python bench/tokenize.py [--megabytes 200] [--train-megabytes 50] [--vocab 32768] [--cpus 2]

Input: the extracted text of ../shared/data/warc/trafilatura-eval-990.warc.gz (extracted once with our
extract stage, not timed), repeated with distinct ids until `--megabytes` MB, as Parquet in 8 files.

Tokenization, with one tokenizer trained beforehand (not timed):
  raw          `Tokenizer.encode_batch` over all texts in one process (its Rust threads use every
               core), EOS appended to each document, nothing written
  crawl2model  the `tokenize` stage alone on local Ray with --cpus CPUs (its input already read into
               shards by a `--until read` run): encode, shuffle, Arrow token shards and index.json
               written; timed in-process after Ray started
  datatrove    ParquetReader -> DocumentTokenizer on LocalPipelineExecutor(tasks=2, workers=2), writing
               its token files and index
BPE training on the first `--train-megabytes` MB of the same texts:
  raw          `Tokenizer.train_from_iterator` on the list of texts
  crawl2model  the `train_tokenizer` stage alone (reads its input shards, trains, writes tokenizer.json)
"""
from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, this file would shadow the standard library's `tokenize`

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._datatrove import run_datatrove  # noqa: E402
from bench.filters import extracted_texts  # noqa: E402

FILES = 8


def corpus(megabytes: float) -> list[str]:
    texts = [t for t in extracted_texts() if t.strip()]
    size = sum(len(t.encode()) for t in texts)
    repeat = max(1, int(megabytes * 1e6 // size) + 1)
    out, total = [], 0
    for copy in range(repeat):
        for text in texts:
            if total >= megabytes * 1e6:
                return out
            out.append(text)
            total += len(text.encode())
    return out


def write_parquet(texts: list[str], folder: Path) -> None:
    folder.mkdir(parents=True)
    ids = [f"doc-{i:08d}" for i in range(len(texts))]
    per = -(-len(texts) // FILES)
    for part in range(FILES):
        chunk = slice(part * per, (part + 1) * per)
        pq.write_table(pa.table({"id": ids[chunk], "text": texts[chunk]}), folder / f"part-{part}.parquet")


def c2m_run(config: dict, stage: str) -> float:
    """Seconds of `stage` alone: a first run reads the input into shards, the timed one runs the stage."""
    import ray

    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.runner import connect, run

    run_config, nodes = parse_config(config)
    connect(run_config, address=None)
    try:
        run(run_config, nodes, until="read", show_progress=False)
        started = time.perf_counter()
        run(run_config, nodes, until=stage, show_progress=False)
        return time.perf_counter() - started
    finally:
        ray.shutdown()


def raw_encode(texts: list[str], tokenizer_path: str) -> tuple[float, int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_path)
    started = time.perf_counter()
    tokens = 0
    for i in range(0, len(texts), 10_000):
        tokens += sum(len(e.ids) + 1 for e in tokenizer.encode_batch(texts[i:i + 10_000], add_special_tokens=False))
    return time.perf_counter() - started, tokens


def datatrove_tokenize(folder: Path, tokenizer_path: str, tmp: Path) -> tuple[float, int]:
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    from crawl2model.model.special_tokens import EOS

    seconds, tasks = run_datatrove([ParquetReader(str(folder), glob_pattern="*.parquet"),
                                    DocumentTokenizer(str(tmp / "dt-out"), tokenizer_name_or_path=tokenizer_path,
                                                      eos_token=EOS, local_working_dir=str(tmp / "dt-work"))],
                                   tmp / "dt-logs")
    return seconds, sum(steps[-1]["tokens"]["total"] for steps in tasks)  # the tokenizer's count, EOS included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=200)
    parser.add_argument("--train-megabytes", type=float, default=50)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args()

    from crawl2model.stages.train_tokenizer import TrainTokenizerConfig, train_bpe

    texts = corpus(args.megabytes)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    train_texts = corpus(args.train_megabytes)
    with tempfile.TemporaryDirectory(prefix="bench-tok-") as name:
        tmp = Path(name)
        write_parquet(texts, tmp / "input")
        write_parquet(train_texts, tmp / "train-input")
        print(f"{len(texts):,} documents, {megabytes:.1f} MB; training on {len(train_texts):,} documents, "
              f"{sum(len(t.encode()) for t in train_texts) / 1e6:.1f} MB; vocabulary {args.vocab}", flush=True)

        config = TrainTokenizerConfig(vocab_size=args.vocab)
        started = time.perf_counter()
        tokenizer = train_bpe(train_texts, config)
        raw_train = time.perf_counter() - started
        tokenizer_path = str(tmp / "tokenizer.json")
        tokenizer.save(tokenizer_path)
        c2m_train = c2m_run({"name": "bench-bpe", "output_dir": str(tmp / "c2m-bpe"), "ray": {"num_cpus": args.cpus},
                             "input": {"parquet": [str(tmp / "train-input/*.parquet")], "docs_per_shard": 5000},
                             "stages": [{"name": "bpe", "type": "train_tokenizer", "vocab_size": args.vocab}]}, "bpe")
        same = json.loads((tmp / "c2m-bpe/stages/bpe/artifact/tokenizer.json").read_text())["model"] == json.loads(
            tokenizer.to_str())["model"]

        raw_seconds, raw_tokens = raw_encode(texts, tokenizer_path)
        c2m_seconds = c2m_run({"name": "bench-tok", "output_dir": str(tmp / "c2m-tok"), "ray": {"num_cpus": args.cpus},
                               "input": {"parquet": [str(tmp / "input/*.parquet")], "docs_per_shard": 5000},
                               "stages": [{"name": "tokenize", "type": "tokenize", "tokenizer": tokenizer_path}]},
                              "tokenize")
        index = json.loads((tmp / "c2m-tok/stages/tokenize/artifact/index.json").read_text())
        c2m_tokens = sum(index["splits"][s]["tokens"] for s in ("train", "val"))
        dt = None if args.skip_datatrove else datatrove_tokenize(tmp / "input", tokenizer_path, tmp)

    print(f"\n{'tokenization':40s} {'tokens':>12s} {'seconds':>8s} {'Mtok/s':>8s} {'vs raw':>7s} {'vs dt':>7s}")
    rows = [("raw encode_batch (1 process, all cores)", raw_tokens, raw_seconds),
            (f"crawl2model tokenize stage ({args.cpus} CPUs)", c2m_tokens, c2m_seconds)]
    if dt:
        rows.append(("datatrove DocumentTokenizer (2 workers)", dt[1], dt[0]))
    for name, tokens, seconds in rows:
        vs_dt = f"{dt[0] / seconds:6.2f}x" if dt else "   n/a"
        print(f"{name:40s} {tokens:12,d} {seconds:8.2f} {tokens / seconds / 1e6:8.2f} {raw_seconds / seconds:6.2f}x {vs_dt}")
    print(f"\n{'BPE training':40s} {'seconds':>8s} {'vs raw':>7s}")
    print(f"{'raw train_from_iterator':40s} {raw_train:8.2f} {1:6.2f}x")
    print(f"{'crawl2model train_tokenizer stage':40s} {c2m_train:8.2f} {raw_train / c2m_train:6.2f}x"
          f"   same merges as raw: {same}")


if __name__ == "__main__":
    main()
