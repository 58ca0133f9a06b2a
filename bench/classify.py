"""Classifier scoring: the quality_classifier stage in a `pipeline run` vs fastText's predict in a
plain loop, on the same documents and model, side by side in one run.

    python bench/classify.py [--repeat 40] [--cpus 2]

Model: a toxicity classifier trained on ../shared/data/toxicity-davidson with the default settings
(not timed). Documents: the extracted text of the 990-page WARC (extracted once, not timed),
repeated `--repeat` times with distinct ids, in Parquet files.
  plain loop   one process: the stage's preprocessing (one vectorised call per batch of texts,
               as the stage does it: the model needs the same input to give the same scores), then
               `model.f.predict(line, -1, 0.0, "strict")` per document; the predict part alone is
               shown too
  crawl2model  `pipeline run`: its `read` stage turns the Parquet into shards of 2000 documents
               (not timed), then the stage scores every document (action: annotate) on local Ray
               with --cpus CPUs, reading and writing Parquet shards; timed in-process after
               ray.init, and as the whole command (imports and Ray start included)
The scores of the two are compared document by document.
"""
from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.filters import extracted_texts  # noqa: E402

DAVIDSON = ROOT.parent / "shared/data/toxicity-davidson/labeled_data.csv"
PIPELINE_CLI = str(Path(sys.executable).with_name("pipeline"))


def train_model(path: Path) -> None:
    from crawl2model.classifiers.data import ExampleSource, read_source
    from crawl2model.classifiers.train import FastTextSettings, train

    source = ExampleSource(files=[str(DAVIDSON)], text_column="tweet", label_column="class",
                           labels={0: "toxic", 1: "toxic", 2: "clean"})
    train(read_source(source, 0), FastTextSettings(positive="toxic", seed=0), str(path))


def write_inputs(texts: list[str], repeat: int, folder: Path, files: int = 4) -> list[str]:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    ids = [f"{copy}-{i}" for copy in range(repeat) for i in range(len(texts))]
    table = pa.table({"id": ids, "text": texts * repeat})
    bounds = [part * len(ids) // files for part in range(files + 1)]
    paths = []
    for part in range(files):
        path = folder / f"part-{part}.parquet"
        pq.write_table(table.slice(bounds[part], bounds[part + 1] - bounds[part]), path)
        paths.append(str(path))
    return paths


def plain_loop(model_path: Path, texts: list[str], repeat: int) -> tuple[float, float, dict[str, float]]:
    """Seconds to preprocess every document (one vectorised call per copy of the pages, as the
    stage does per batch), seconds of the predict loop over them, and each text's score."""
    from crawl2model.classifiers.fasttext_file import load_model
    from crawl2model.classifiers.text import preprocess

    model = load_model(model_path)
    column = pa.array(texts)
    started = time.perf_counter()
    for _ in range(repeat):
        lines = [line + "\n" for line in preprocess(column, 100_000).to_pylist()]
    prepare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(repeat):
        for line in lines:
            model.f.predict(line, -1, 0.0, "strict")
    seconds = time.perf_counter() - started
    scores = {}
    for text, line in zip(texts, lines):
        pairs = dict((label, probability) for probability, label in model.f.predict(line, -1, 0.0, "strict"))
        scores[text] = pairs.get("__label__toxic", 0.0)
    return prepare, seconds, scores


def c2m_config(paths: list[str], model: Path, out: str, cpus: int) -> dict:
    return {"name": "bench-classify", "output_dir": out, "ray": {"num_cpus": cpus},
            "input": {"parquet": paths, "docs_per_shard": 2000},
            "stages": [{"name": "toxicity", "type": "toxicity_classifier", "model": str(model), "action": "annotate"}]}


def run_c2m(paths: list[str], model: Path, tmp: Path, cpus: int) -> tuple[float, float, pa.Table]:
    """The input is read into shards first (not timed: it is the `read` stage's work, done once
    per run whatever stages follow), then the stage scores them. Returns (seconds of run() after
    ray.init, seconds of the whole CLI command, the scored documents)."""
    import ray

    from crawl2model.pipeline import storage
    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.runner import connect, run
    from crawl2model.pipeline.summary import stage_files

    config, nodes = parse_config(c2m_config(paths, model, str(tmp / "c2m"), cpus))
    connect(config, address=None)
    try:
        run(config, nodes, until="read", show_progress=False)
        started = time.perf_counter()
        manifest = run(config, nodes, show_progress=False)
        inproc = time.perf_counter() - started
    finally:
        ray.shutdown()
    kept = stage_files(config.output_dir, manifest.stages["toxicity"]).kept
    scored = storage.read_parquet_files([storage.absolute(f.path, config.output_dir) for f in kept],
                                       ["text", "toxicity_score"])
    config_path = tmp / "c2m.yaml"
    config_path.write_text(yaml.safe_dump(c2m_config(paths, model, str(tmp / "c2m"), cpus)))
    started = time.perf_counter()
    subprocess.run([PIPELINE_CLI, "run", str(config_path), "--force", "toxicity", "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return inproc, time.perf_counter() - started, scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    texts = extracted_texts()
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "toxicity.bin"
        train_model(model)
        paths = write_inputs(texts, args.repeat, tmp / "input")
        docs = len(texts) * args.repeat
        mb = sum(len(t.encode()) for t in texts) * args.repeat / 1e6
        print(f"{docs} documents ({len(texts)} extracted pages x {args.repeat}, {mb:.0f} MB); "
              f"{os.cpu_count()} cores", flush=True)
        prepare, predict, loop_scores = plain_loop(model, texts, args.repeat)
        inproc, cli, scored = run_c2m(paths, model, tmp, args.cpus)
    ours = np.array(scored.column("toxicity_score").to_pylist(), dtype=float)
    theirs = np.array([loop_scores[t] for t in scored.column("text").to_pylist()], dtype=float)
    print(f"scores: {scored.num_rows} documents, largest difference from the plain loop "
          f"{np.nanmax(np.abs(ours - theirs)):.2e}")
    loop = prepare + predict
    print(f"plain loop: preprocessing {prepare:.2f}s ({mb / prepare:.0f} MB/s), predict {predict:.2f}s "
          f"({mb / predict:.0f} MB/s)")
    print(f"\n{'system':<52} {'seconds':>8} {'docs/s':>8} {'vs plain loop':>13}")
    for label, seconds in [("plain loop: preprocess + predict (1 process)", loop),
                           ("plain loop: predict only, text prepared untimed", predict),
                           (f"crawl2model stage, run() ({args.cpus} CPUs, Ray started)", inproc),
                           ("crawl2model stage, CLI total (Ray start incl.)", cli)]:
        print(f"{label:<52} {seconds:>8.2f} {docs / seconds:>8.0f} {loop / seconds:>12.2f}x")


if __name__ == "__main__":
    main()
