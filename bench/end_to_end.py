"""The curation half end to end: crawl2model vs datatrove, WARC to deduplicated Parquet, in one run.

    python bench/end_to_end.py [--repeat 10] [--runs 3] [--materialize all,final]

Input: the 1,033 pages of ../shared/data/html-trafilatura-eval made into a WARC by
../shared/tools/html_to_warc.py with `--repeat` copies of each (a copy has its own record id and
URL), cut into 2 files so that datatrove's 2 tasks each get one. Both systems, 2 workers:

  crawl2model  `pipeline run` (the whole command, Ray's start and stop included): extract
               (trafilatura, favor precision) -> langid (en) -> gopher_repetition -> gopher_quality
               -> c4_quality -> fineweb_quality -> exact_dedup -> minhash_dedup (5-grams, 14 bands
               x 8 rows), kept and removed documents as Parquet at every stage
  datatrove    the same as one script in a child process (imports included): WarcReader ->
               Trafilatura (the same options) -> LanguageFilter (en) -> GopherRepetitionFilter ->
               GopherQualityFilter -> C4QualityFilter -> FineWebQualityFilter -> ParquetWriter,
               then its 4 MinHash steps (signatures, buckets, cluster, filter -> ParquetWriter),
               each a LocalPipelineExecutor with 2 workers, with FineWeb's MinHash settings. It has
               no exact dedup: its MinHash removes the copies.

Each run prints both systems' wall times and documents kept, and where crawl2model's time went:
from the command's start to its first unit of work (imports, Ray's start, the plan), the work
(first unit started to last unit finished, from the done records), and the tail (the manifest,
the report, Ray's stop). At the end: the median ratio over the runs, and the extraction F1 of
both extractors on the 990 annotated pages.
"""
from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`

import argparse
import glob
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from crawl2model.stages.extract import ExtractConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGES = SHARED / "data" / "html-trafilatura-eval"
PIPELINE_CLI = str(Path(sys.executable).with_name("pipeline"))
FILTERS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
BANDS, ROWS, NGRAM = 14, 8, 5
sys.path.insert(0, str(ROOT))


def make_input(tmp: Path, repeat: int) -> tuple[Path, int]:
    """The pages as a WARC of `repeat` copies, cut into 2 files; (their folder, the pages)."""
    from bench.extract import cut_warc

    whole = tmp / "whole.warc.gz"
    subprocess.run([sys.executable, str(SHARED / "tools" / "html_to_warc.py"), str(whole), str(PAGES),
                    "--repeat", str(repeat)], check=True, stdout=subprocess.DEVNULL)
    paths = cut_warc(str(whole), str(tmp / "warc"), 2, None)
    whole.unlink()
    return tmp / "warc", sum(1 for _ in _responses(paths))


def _responses(paths: list[str]):
    from warcio.archiveiterator import ArchiveIterator

    for path in paths:
        with open(path, "rb") as fh:
            yield from (record for record in ArchiveIterator(fh) if record.rec_type == "response")


def c2m_config(warcs: Path, out: Path, materialize: str = "all") -> dict:
    return {"name": "bench-end-to-end", "output_dir": str(out), "ray": {"num_cpus": 2}, "materialize": materialize,
            "input": {"warc": [str(warcs / "*.warc.gz")], "docs_per_shard": 128},
            "stages": [{"name": "extract", "type": "extract", "favor": "precision"},
                       {"name": "langid", "type": "langid", "languages": ["en"]},
                       *({"name": name, "type": name} for name in FILTERS),
                       {"name": "exact_dedup", "type": "exact_dedup"},
                       {"name": "minhash_dedup", "type": "minhash_dedup", "ngram": NGRAM, "num_perm": BANDS * ROWS,
                        "bands": BANDS, "rows": ROWS}]}


def run_c2m(warcs: Path, tmp: Path, name: str, materialize: str = "all") -> dict:
    out = tmp / name
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(c2m_config(warcs, out, materialize), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started = time.time()
    subprocess.run([PIPELINE_CLI, "run", str(path), "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ended = time.time()
    done = [json.loads(Path(p).read_text()) for p in glob.glob(str(out / "stages" / "*" / "_done" / "*.json"))]
    done += [json.loads(Path(p).read_text()) for p in glob.glob(str(out / "stages" / "*" / "phases" / "*" / "_done" / "*.json"))]
    first, last = min(r["started"] for r in done), max(r["finished"] for r in done)
    manifest = json.loads((out / "manifest.json").read_text())
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    kept = sum(f.stat().st_size for f in (out / "stages" / "minhash_dedup" / "kept").glob("*.parquet"))
    removed = sum(f.stat().st_size for f in out.glob("stages/*/removed/*.parquet"))
    return {"seconds": ended - started, "before_work": first - started, "work": last - first, "tail": ended - last,
            "kept": manifest["stages"]["minhash_dedup"]["docs_out"], "bytes": written,
            "final_and_removed": kept + removed,
            "stages": {stage: entry.get("wall_seconds") for stage, entry in manifest["stages"].items()}}


def datatrove_script(warcs: str, out: str) -> None:
    """In a child process: the FineWeb-style pipeline with datatrove, then its MinHash steps."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import ParquetReader, WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.logging import logger

    from bench.filters import _local_language_filter

    logger.remove()
    extractor = same_extractor()
    root = Path(out)
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=1, hash_config=HashConfig())
    steps = [
        ([WarcReader(warcs, glob_pattern="*.warc.gz"), extractor,
          _local_language_filter(["en"]), GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
          FineWebQualityFilter(), ParquetWriter(str(root / "filtered"))], 2),
        ([ParquetReader(str(root / "filtered")), MinhashDedupSignature(output_folder=str(root / "signatures"),
                                                                        config=config)], 2),
        ([MinhashDedupBuckets(input_folder=str(root / "signatures"), output_folder=str(root / "buckets"),
                              config=config)], BANDS),
        ([MinhashDedupCluster(input_folder=str(root / "buckets"), output_folder=str(root / "remove_ids"),
                              config=config)], 1),
        ([ParquetReader(str(root / "filtered")), MinhashDedupFilter(input_folder=str(root / "remove_ids")),
          ParquetWriter(str(root / "kept"))], 2),
    ]
    for number, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=2, logging_dir=str(root / "logs" / str(number)),
                              skip_completed=False).run()


def same_extractor():
    """datatrove's Trafilatura with our extract stage's options (its own defaults differ: it
    deduplicates within a page by default, which removes text ours keeps)."""
    from datatrove.pipeline.extractors import Trafilatura

    c = ExtractConfig(favor="precision")
    return Trafilatura(favour_precision=True, favor_recall=False, deduplicate=c.deduplicate, timeout=c.timeout_seconds,
                       fast=c.fast, include_tables=c.include_tables, output_format="txt")


def run_datatrove(warcs: Path, tmp: Path, name: str) -> dict:
    import pyarrow.parquet as pq

    out = tmp / name
    started = time.time()
    subprocess.run([sys.executable, __file__, "--datatrove-child", str(warcs), str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - started
    kept = sum(pq.read_metadata(path).num_rows for path in glob.glob(str(out / "kept" / "*.parquet")))
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and "logs" not in f.parts)
    return {"seconds": seconds, "kept": kept, "bytes": written}


def extraction_f1() -> dict:
    """Snippet precision, recall and F1 of both extractors (favor precision) on the 990 annotated pages."""
    import pyarrow as pa

    from bench._modules import from_path
    from crawl2model.stages.extract import Extract

    pages = from_path("conftest", ROOT / "tests" / "conftest.py").load_eval_pages(SHARED / "data")
    scores = from_path("test_extract", ROOT / "tests" / "stages" / "test_extract.py").snippet_scores
    table = pa.table({"html": [page[1] for page in pages], "url": [page[0] for page in pages]})
    ours = Extract(ExtractConfig(favor="precision")).process(table).column("text").to_pylist()
    theirs = same_extractor()
    return {"crawl2model": scores(pages, ours), "datatrove": scores(pages, [theirs.extract(page[1]) for page in pages])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="copies of each of the 1,033 pages")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--materialize", default="all,final", help="crawl2model's modes to run, comma-separated")
    parser.add_argument("--datatrove-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_child:
        return datatrove_script(*args.datatrove_child)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder:
        tmp = Path(folder)
        warcs, pages = make_input(tmp, args.repeat)
        print(f"input: {pages:,} pages in 2 WARC files; 2 workers each; os.cpu_count()={os.cpu_count()}", flush=True)
        modes = args.materialize.split(",")
        ratios: dict[str, list[float]] = {mode: [] for mode in modes}
        for run in range(args.runs):
            theirs = run_datatrove(warcs, tmp, f"dt-{run}")
            print(f"\nrun {run + 1}: datatrove {theirs['seconds']:.1f} s, {theirs['kept']:,} kept, "
                  f"{theirs['bytes'] / 1e6:.1f} MB written", flush=True)
            for mode in modes:
                ours = run_c2m(warcs, tmp, f"c2m-{run}-{mode}", mode)
                ratios[mode].append(theirs["seconds"] / ours["seconds"])
                print(f"  crawl2model, materialize: {mode}: {ours['seconds']:.1f} s, {ours['kept']:,} kept, "
                      f"{ours['bytes'] / 1e6:.1f} MB written ({ours['bytes'] / ours['final_and_removed']:.2f}x its final "
                      f"kept and removed shards, {ours['final_and_removed'] / 1e6:.1f} MB); {ratios[mode][-1]:.2f}x", flush=True)
                print(f"    {ours['before_work']:.1f} s before the first unit, {ours['work']:.1f} s of work, "
                      f"{ours['tail']:.1f} s after the last; stage wall seconds {ours['stages']}", flush=True)
        for mode in modes:
            print(f"\nmedian, materialize: {mode}: crawl2model {statistics.median(ratios[mode]):.2f}x datatrove "
                  f"(runs: {', '.join(f'{r:.2f}x' for r in ratios[mode])})")
    f1 = extraction_f1()
    for system, (precision, recall, score) in f1.items():
        print(f"extraction on the 990 annotated pages, {system}: precision {precision:.4f} recall {recall:.4f} "
              f"F1 {score:.4f}")


if __name__ == "__main__":
    main()
