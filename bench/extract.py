"""Read + extract throughput: crawl2model vs a plain loop vs datatrove, side by side in one run.

    python bench/extract.py [--warc PATH] [--limit N] [--shard-sizes 16,32,64,128] [--cpus 2]
    python bench/extract.py --engines      # the extractors alone: speed and F1 on the 990 annotated pages

Systems, all over the same WARC (default: the 1032-response trafilatura eval set):
  plain      one process: warcio ArchiveIterator + trafilatura.extract with ExtractConfig's defaults
             (pages decoded to str with pipeline.charset.decode_html, as the read stage does)
  crawl2model  `pipeline run` (read + extract stages) on a local Ray with --cpus CPUs; a sweep of
             docs_per_shard timed in-process after ray.init (Ray start-up excluded, workers warmed by a
             tiny run first), then the best size once more through the CLI, timed whole (Ray start included)
  datatrove  WarcReader + Trafilatura + JsonlWriter on LocalPipelineExecutor(tasks=2, workers=2); once on
             the one file (datatrove splits by file: one task gets all the work) and once on the WARC cut
             into 2 files (cutting not timed). Needs faust-cchardet, python-magic and orjson.
docs = documents handed to the extractor; docs/s = docs / seconds. `--limit N` keeps the first N responses.

`--engines`: the extract stage's `process` in one process over the 990 annotated pages of
../shared/data/html-trafilatura-eval, with trafilatura (default, and `fast: true`) and with
Resiliparse: pages per second and the snippet F1 of tests/stages/test_extract.py.
"""
from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # run as a script, bench/tokenize.py would shadow the standard library's `tokenize`

import argparse
import glob
import gzip
import json
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from warcio.archiveiterator import ArchiveIterator

DEFAULT_WARC = str(Path(__file__).resolve().parents[2] / "shared/data/warc/trafilatura-eval-990.warc.gz")
PIPELINE_CLI = str(Path(sys.executable).with_name("pipeline"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._datatrove import run_datatrove as run_steps  # noqa: E402
from bench._modules import from_path  # noqa: E402


def cut_warc(src: str, dest: str, parts: int, limit: int | None) -> list[str]:
    """Copy the first `limit` response records of a per-record-gzip WARC, byte for byte, into
    `parts` contiguous files (so every reader sees identical records)."""
    spans = []
    with open(src, "rb") as fh:
        iterator = ArchiveIterator(fh)
        for record in iterator:
            if record.rec_type == "response":
                record.content_stream().read()
                spans.append((iterator.get_record_offset(), iterator.get_record_length()))
                if limit and len(spans) == limit:
                    break
        os.makedirs(dest, exist_ok=True)
        paths, per = [], -(-len(spans) // parts)
        for part in range(parts):
            path = os.path.join(dest, f"part-{part:02d}.warc.gz")
            with open(path, "wb") as out:
                for offset, length in spans[part * per:(part + 1) * per]:
                    fh.seek(offset)
                    out.write(fh.read(length))
            paths.append(path)
    return paths


def run_plain(warcs: list[str]) -> dict:
    """The baseline: one process, no shards, same extraction options as the extract stage."""
    import trafilatura  # noqa: F401  (imported before the clock starts)

    from crawl2model.pipeline.charset import decode_html
    from crawl2model.stages.extract import ExtractConfig, trafilatura_extract

    config, docs, texts = ExtractConfig(), 0, 0
    started = time.perf_counter()
    for path in warcs:
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response":
                    continue
                html, _ = decode_html(record.content_stream().read(), None)  # as the read stage decodes
                url = record.rec_headers.get_header("WARC-Target-URI")
                docs += 1
                texts += bool(trafilatura_extract(html, url, config))
    return {"docs": docs, "out": texts, "seconds": time.perf_counter() - started}


def c2m_raw_config(warcs: list[str], out: str, docs_per_shard: int, cpus: int) -> dict:
    return {"name": "bench-extract", "output_dir": out, "ray": {"num_cpus": cpus},
            "input": {"warc": warcs, "docs_per_shard": docs_per_shard},
            "stages": [{"name": "extract", "type": "extract"}]}


def load_json(path: str):
    return json.loads(Path(path).read_text())


def count_lines(path: str) -> int:
    with gzip.open(path, "rt") as fh:
        return sum(1 for _ in fh)


def c2m_stats(out: str, t0: float) -> dict:
    """Counts from stages/*/stats.json, and a timeline (seconds after t0) from the _done records."""
    read, extract = (load_json(os.path.join(out, "stages", s, "stats.json")) for s in ("read", "extract"))
    done = [load_json(p) for p in glob.glob(os.path.join(out, "stages", "extract", "_done", "*.json"))]
    read_done = [load_json(p) for p in glob.glob(os.path.join(out, "stages", "read", "_done", "*.json"))]
    first, last = min(r["started"] for r in done), max(r["finished"] for r in done)
    return {"docs": extract["docs_in"], "out": extract["docs_out"], "shards": extract["shards"],
            "read_removed": read["removed_by_reason"], "extract_shard_seconds": extract["cpu_seconds"],
            "read_start": min(r["started"] for r in read_done) - t0, "read_end": max(r["finished"] for r in read_done) - t0,
            "extract_start": first - t0, "extract_end": last - t0,
            "extract_parallelism": extract["cpu_seconds"] / max(last - first, 1e-9)}


def run_c2m_sweep(warcs: list[str], tmp: str, sizes: list[int], cpus: int) -> tuple[float, list[dict]]:
    """In-process runs on one local Ray: (ray.init seconds, a result per docs_per_shard)."""
    import ray

    from crawl2model.catalog import parse_config
    from crawl2model.pipeline.runner import connect, run

    def once(paths: list[str], size: int, name: str) -> dict:
        out = os.path.join(tmp, name)
        config, nodes = parse_config(c2m_raw_config(paths, out, size, cpus))
        t0 = time.time()
        run(config, nodes, show_progress=False)
        return {"seconds": time.time() - t0, "docs_per_shard": size, **c2m_stats(out, t0)}

    config, _ = parse_config(c2m_raw_config(warcs, os.path.join(tmp, "c2m-init"), 64, cpus))
    started = time.perf_counter()
    connect(config, address=None)
    init_seconds = time.perf_counter() - started
    try:
        once(cut_warc(warcs[0], os.path.join(tmp, "warmup-warc"), 1, 16), 8, "c2m-warmup")
        return init_seconds, [once(warcs, size, f"c2m-{size}") for size in sizes]
    finally:
        ray.shutdown()


def run_c2m_cli(warcs: list[str], tmp: str, size: int, cpus: int) -> dict:
    """`pipeline run CONFIG --no-progress` in a fresh process, timed whole (imports and Ray start included)."""
    out = os.path.join(tmp, f"c2m-cli-{size}")
    config_path = os.path.join(tmp, f"c2m-cli-{size}.yaml")
    Path(config_path).write_text(yaml.safe_dump(c2m_raw_config(warcs, out, size, cpus)))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.time()
    subprocess.run([PIPELINE_CLI, "run", config_path, "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"seconds": time.time() - t0, "docs_per_shard": size, **c2m_stats(out, t0)}


def run_datatrove(warc_dir: str, tmp: str, name: str) -> dict:
    """WarcReader -> Trafilatura (the extract stage's options) -> JsonlWriter, 2 tasks on 2 workers."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    from crawl2model.stages.extract import ExtractConfig

    c = ExtractConfig()
    out, logs = os.path.join(tmp, name, "out"), os.path.join(tmp, name, "logs")
    seconds, tasks = run_steps(
        [WarcReader(warc_dir, glob_pattern="*.warc.gz"),
         Trafilatura(favour_precision=c.favor == "precision", favor_recall=c.favor == "recall",
                     deduplicate=c.deduplicate, timeout=c.timeout_seconds, fast=c.fast,
                     include_tables=c.include_tables, output_format="txt"),
         JsonlWriter(out)], Path(logs))
    per_task = [steps[0].get("documents", {}).get("total", 0) for steps in tasks]  # [0]: the reader
    docs, busy = sum(per_task), sum(1 for n in per_task if n)
    written = sum(count_lines(p) for p in glob.glob(os.path.join(out, "*.jsonl.gz")))
    return {"docs": docs, "out": written, "seconds": seconds, "busy_tasks": busy}


def print_table(rows: list[tuple[str, dict]], plain: dict, datatrove: dict) -> None:
    rate = lambda r: r["docs"] / r["seconds"]
    print(f"\n{'system':<50} {'docs':>5} {'text':>5} {'seconds':>8} {'docs/s':>7} {'vs plain':>8} {'vs dt 2f':>8}")
    for name, r in rows:
        print(f"{name:<50} {r['docs']:>5} {r['out']:>5} {r['seconds']:>8.2f} {rate(r):>7.1f} "
              f"{rate(r) / rate(plain):>7.2f}x {rate(r) / rate(datatrove):>7.2f}x")


def print_timeline(name: str, r: dict) -> None:
    print(f"  {name}: read {r['read_start']:.1f}-{r['read_end']:.1f}s, extract {r['extract_start']:.1f}-"
          f"{r['extract_end']:.1f}s over {r['shards']} shards ({r['extract_shard_seconds']:.1f} shard-seconds, "
          f"parallelism {r['extract_parallelism']:.2f}), then {r['seconds'] - r['extract_end']:.1f}s to return")


def compare_engines() -> None:
    import pyarrow as pa

    from crawl2model.stages.extract import Extract, ExtractConfig

    tests = Path(__file__).resolve().parents[1] / "tests"
    pages = from_path("conftest", tests / "conftest.py").load_eval_pages(Path(DEFAULT_WARC).parents[1])
    scores = from_path("test_extract", tests / "stages" / "test_extract.py").snippet_scores
    table = pa.table({"html": [page[1] for page in pages], "url": [page[0] for page in pages]})
    print(f"{len(pages)} annotated pages, one process\n\n{'engine':<22} {'seconds':>8} {'pages/s':>8} "
          f"{'vs default':>10} {'precision':>9} {'recall':>7} {'F1':>7}")
    base = None
    for name, config in (("trafilatura", ExtractConfig()), ("trafilatura, fast", ExtractConfig(fast=True)),
                         ("resiliparse", ExtractConfig(engine="resiliparse"))):
        started = time.perf_counter()
        texts = Extract(config).process(table).column("text").to_pylist()
        seconds = time.perf_counter() - started
        base = base or seconds
        precision, recall, f1 = scores(pages, texts)
        print(f"{name:<22} {seconds:>8.2f} {len(pages) / seconds:>8.1f} {base / seconds:>9.2f}x "
              f"{precision:>9.4f} {recall:>7.4f} {f1:>7.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warc", default=DEFAULT_WARC)
    parser.add_argument("--limit", type=int, default=None, help="only the first N responses")
    parser.add_argument("--shard-sizes", default="16,32,64,128", help="docs_per_shard values to try")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--engines", action="store_true", help="compare the extractors alone (speed and F1)")
    args = parser.parse_args()
    if args.engines:
        return compare_engines()
    sizes = [int(s) for s in args.shard_sizes.split(",")]
    from datatrove.utils.logging import logger as dt_logger

    dt_logger.remove()  # datatrove logs every step through loguru
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        one_dir = os.path.join(tmp, "one")
        if args.limit:
            one = cut_warc(args.warc, one_dir, 1, args.limit)
        else:  # the file itself, in a folder of its own for datatrove
            os.makedirs(one_dir)
            one = [os.path.join(one_dir, "input.warc.gz")]
            os.symlink(os.path.abspath(args.warc), one[0])
        two_dir = os.path.join(tmp, "two")
        cut_warc(args.warc, two_dir, 2, args.limit)
        print(f"input: {args.warc} ({f'first {args.limit}' if args.limit else 'all'} responses); "
              f"{args.cpus} CPUs for crawl2model, 2 workers for datatrove; os.cpu_count()={os.cpu_count()}", flush=True)

        plain = run_plain(one)
        print(f"plain loop: {plain}", flush=True)
        dt_one = run_datatrove(one_dir, tmp, "dt-one")
        print(f"datatrove, 1 file: {dt_one}", flush=True)
        dt_two = run_datatrove(two_dir, tmp, "dt-two")
        print(f"datatrove, 2 files: {dt_two}", flush=True)
        init_seconds, sweep = run_c2m_sweep(one, tmp, sizes, args.cpus)
        print(f"crawl2model ray.init: {init_seconds:.2f}s", flush=True)
        for r in sweep:
            print(f"crawl2model docs_per_shard={r['docs_per_shard']}: {r}", flush=True)
        best = min(sweep, key=lambda r: r["seconds"])["docs_per_shard"]
        cli = run_c2m_cli(one, tmp, best, args.cpus)
        print(f"crawl2model CLI: {cli}", flush=True)

    rows = [("plain loop (1 process)", plain),
            (f"datatrove, 1 file ({dt_one['busy_tasks']} of 2 tasks get work)", dt_one),
            ("datatrove, WARC cut in 2 files (cut not timed)", dt_two),
            *((f"crawl2model run(), docs_per_shard={r['docs_per_shard']}", r) for r in sweep),
            (f"crawl2model CLI total, docs_per_shard={cli['docs_per_shard']}", cli)]
    print_table(rows, plain, dt_two)
    print(f"\ncrawl2model, where the time goes (seconds from start; ray.init alone took {init_seconds:.2f}s in-process):")
    for r in sweep:
        print_timeline(f"run() {r['docs_per_shard']}/shard", r)
    print_timeline(f"CLI {cli['docs_per_shard']}/shard (incl. imports + Ray start)", cli)
    print(f"read stage removed: {cli['read_removed'] or 'nothing'}; datatrove's WarcReader kept "
          f"{dt_two['docs']} of {plain['docs']} responses (it drops what python-magic does not call text/html)")


if __name__ == "__main__":
    main()
