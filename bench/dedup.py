"""MinHash near-duplicate removal: crawl2model vs datasketch and datatrove, side by side in one run.

    python bench/dedup.py [--docs 200000] [--sizes 50000,1000000] [--cpus 2] [--skip-datatrove]
    python bench/dedup.py --docs 20000 --sizes '' --datasketch-docs 1000 --no-web     # a quick look

Input: real English sentences (NLTK's brown, movie_reviews, state_union, inaugural, webtext from
../shared/data/text/*.zip, and the extracted text of ../shared/data/warc/trafilatura-eval-990.warc.gz
unless --no-web), drawn at random (seeded) into documents of 50-600 words, so two base documents
rarely share a 5-gram. 10% of documents are planted near-duplicates: a copy of a random earlier
document (itself perhaps a copy) with each word substituted, deleted or followed by an inserted word
at a rate 0.1 * u^2 (u uniform), so about half the copies keep a true Jaccard (5-gram shingles,
our normalisation) above 0.8. Generated in seeded chunks of 50,000 documents, so each size's
corpus is a prefix of the larger ones; written as Parquet (id, text; ids in document order) of
--docs-per-file rows per file in a temporary folder, which both systems read, writing beside it.

1. Signatures, one process: datasketch's MinHash(num_perm=128, seed=1) per document, fed with
   update_batch the bytes of its 5-word shingles (words of our `fold`), on the first
   --datasketch-docs documents; again with the permutations precomputed once and passed in
   (`permutations=`, its fastest use); ours: `shingle_hashes` + `signatures` over batches of
   --docs-per-file documents, on the same first documents and on all --docs.
2. The whole stage on --docs documents, 5-grams, 14 bands x 8 rows (112 permutations):
     datatrove    MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster ->
                  MinhashDedupFilter (ParquetReader in, ParquetWriter out for kept and removed,
                  cluster sizes kept as ours keeps them), each a LocalPipelineExecutor with 2
                  workers (tasks: 2, 14, 1, 2); default
                  HashConfig (64-bit xxhash), English word splitting (spaCy's blank tokenizer)
     crawl2model  `pipeline run` of one minhash_dedup stage (bands 14, rows 8, num_perm 112) on
                  local Ray with --cpus CPUs, with verify=false (like datatrove: no exact check)
                  and verify=true (the default): run() timed after ray.init, and the whole CLI command
   Each runs in a child process; the parent polls every process of the child's tree (Ray's GCS,
   raylet and its workers included) every 0.2 s for RSS. Removed documents and cluster members
   are compared by id, and against the planted copies.
3. Peak RSS of our stage (verify=true, run() after ray.init) at each of --sizes and --docs, and of
   datasketch's MinHashLSH holding the same documents in memory (signatures computed by ours).

The default run takes about 15 minutes on 2 cores, 8 of them datatrove's signature step.
"""
from __future__ import annotations

import os
import sys

if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)  # bench/tokenize.py would shadow the standard library's tokenize, which numpy and Ray import

import argparse
import gc
import importlib.util
import json
import re
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"
PIPELINE_CLI = str(Path(sys.executable).with_name("pipeline"))
BANDS, ROWS = 14, 8
NGRAM = 5
SPLIT_SENTENCES = re.compile(r"(?<=[.!?])\s+")
os.environ.setdefault("RAY_TMPDIR", "/tmp/rb")  # Ray's socket paths must stay short
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- corpus

def sentences(web: bool) -> list[str]:
    """Real English sentences of at least 3 words, from NLTK corpora (and the WARC's extracted text)."""
    found: list[str] = []

    def add(text: str) -> None:
        for paragraph in text.splitlines():
            found.extend(s for s in SPLIT_SENTENCES.split(paragraph.strip()) if s.count(" ") >= 2)

    with zipfile.ZipFile(DATA / "text/brown.zip") as z:  # word/tag tokens, a sentence per line
        for name in z.namelist():
            if re.fullmatch(r"brown/c[a-r]\d\d", name):
                for line in z.read(name).decode().splitlines():
                    words = [token.rsplit("/", 1)[0] for token in line.split()]
                    if len(words) >= 3:
                        found.append(" ".join(words))
    for corpus in ("movie_reviews", "state_union", "inaugural", "webtext"):
        with zipfile.ZipFile(DATA / f"text/{corpus}.zip") as z:
            for name in z.namelist():
                if name.endswith(".txt"):
                    add(z.read(name).decode("utf-8", errors="replace"))
    if web:
        from bench.filters import extracted_texts

        for text in extracted_texts():
            add(text)
    return found


CHUNK = 50_000  # documents generated per seeded chunk: a smaller corpus is a prefix of a larger one


def make_corpus(n: int, pool: list[str], seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n documents; returns (texts, source, rate): source[i] is the document copy i was made from
    (-1 for a base document), rate its per-word edit rate."""
    pool_arr = np.array(pool, dtype=object)
    lengths = np.array([s.count(" ") + 1 for s in pool])
    rng = np.random.default_rng([seed, 0])
    vocab = np.array(" ".join(pool_arr[rng.integers(len(pool), size=20000)]).split(), dtype=object)
    texts: list[str] = []
    sources, rates = [], []
    for chunk, first in enumerate(range(0, n, CHUNK)):
        rng = np.random.default_rng([seed, 1, chunk])
        target = rng.integers(50, 601, CHUNK)
        copy = rng.random(CHUNK) < 0.10
        copy[0] = chunk > 0
        base = np.flatnonzero(~copy)
        need = np.cumsum(target[base])
        stream = rng.integers(len(pool), size=int(need[-1] / lengths.mean() * 1.2) + 1000)
        words = np.cumsum(lengths[stream])
        assert words[-1] >= need[-1]
        ends = np.searchsorted(words, need) + 1  # document k is stream[ends[k-1]:ends[k]]
        starts = np.concatenate(([0], ends[:-1]))
        texts += [""] * CHUNK
        for k, i in enumerate(base):
            texts[first + i] = " ".join(pool_arr[stream[starts[k]:ends[k]]])
        copies = first + np.flatnonzero(copy)
        source = np.full(CHUNK, -1)
        rate = np.zeros(CHUNK)
        source[copies - first] = (rng.random(len(copies)) * copies).astype(np.int64)  # any earlier document
        rate[copies - first] = 0.1 * rng.random(len(copies)) ** 2
        for i in copies:  # in order: a copy's source, perhaps itself a copy, exists already
            tokens = np.array(texts[source[i - first]].split(), dtype=object)
            m = len(tokens)
            edit = rng.random(m) < rate[i - first]
            op = rng.integers(0, 3, m)
            other = vocab[rng.integers(len(vocab), size=m)]
            tokens = np.where(edit & (op == 0), other, tokens)  # substitute
            keep = np.stack([~(edit & (op == 1)), edit & (op == 2)], axis=1)  # delete; insert after
            texts[i] = " ".join(np.stack([tokens, other], axis=1)[keep])
        sources.append(source)
        rates.append(rate)
    return texts[:n], np.concatenate(sources)[:n], np.concatenate(rates)[:n]


def doc_ids(n: int) -> list[str]:
    return [f"d{i:08d}" for i in range(n)]  # id order is document order: the earlier one is kept


def write_parquet(texts: list[str], folder: Path, per_file: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    ids = doc_ids(len(texts))
    for part, start in enumerate(range(0, len(texts), per_file)):
        table = pa.table({"id": ids[start:start + per_file], "text": texts[start:start + per_file]})
        pq.write_table(table, folder / f"part-{part:04d}.parquet")


def planted_jaccard(texts: list[str], source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(copy index, true Jaccard with its source) of every planted copy."""
    from crawl2model.stages import _minhash

    copies = np.flatnonzero(source >= 0)
    hashes, offsets = _minhash.shingle_hashes([texts[i] for i in copies] + [texts[source[i]] for i in copies], NGRAM)
    k = len(copies)
    sims = np.array([_minhash.jaccard(hashes[offsets[j]:offsets[j + 1]], hashes[offsets[k + j]:offsets[k + j + 1]])
                     for j in range(k)])
    return copies, sims


# ---------------------------------------------------------------- 1. signatures

def datasketch_rate(texts: list[str], reuse_permutations: bool) -> float:
    from datasketch import MinHash

    from crawl2model.stages._text import fold

    perms = MinHash(num_perm=128, seed=1).permutations
    started = time.perf_counter()
    for text in texts:
        words = fold(text).split()
        shingles = [" ".join(words[i:i + NGRAM]).encode() for i in range(max(1, len(words) - NGRAM + 1))]
        if reuse_permutations:
            m = MinHash(num_perm=128, seed=1, permutations=perms, scheme="affine32")
        else:
            m = MinHash(num_perm=128, seed=1)
        m.update_batch(shingles)
    return len(texts) / (time.perf_counter() - started)


def ours_rate(texts: list[str], batch: int) -> float:
    from crawl2model.stages import _minhash

    _minhash.signatures(*_minhash.shingle_hashes(texts[:10], NGRAM), 128, 1)  # permutations and fold table built
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        hashes, offsets = _minhash.shingle_hashes(texts[start:start + batch], NGRAM)
        _minhash.signatures(hashes, offsets, 128, 1)
    return len(texts) / (time.perf_counter() - started)


# ---------------------------------------------------------------- 2. whole stage

def c2m_config(folder: Path, out: Path, cpus: int, per_file: int, verify: bool) -> dict:
    return {"name": "bench-dedup", "output_dir": str(out), "ray": {"num_cpus": cpus},
            "input": {"parquet": [f"{folder}/*.parquet"], "text_column": "text", "id_column": "id",
                      "docs_per_shard": per_file},
            "stages": [{"name": "dedup", "type": "minhash_dedup", "ngram": NGRAM, "num_perm": BANDS * ROWS,
                        "bands": BANDS, "rows": ROWS, "verify": verify}]}


def _psutil():
    try:
        import psutil
    except ImportError:  # Ray ships a copy in ray/thirdparty_files, which importing ray puts on sys.path
        importlib.import_module("ray")
        import psutil
    return psutil


def watched(command: list[str], log: Path, env: dict | None = None) -> dict:
    """Run a child command; its wall time, the peak RSS of its largest process (and which one),
    the peak of its whole tree's RSS summed, and the last JSON line it printed."""
    psutil = _psutil()
    with open(log, "w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                 start_new_session=True, env=env)
        root = psutil.Process(child.pid)
        peak = {"rss": 0, "name": "", "tree": 0, "processes": 0}
        busy: dict[int, str] = {}  # a Ray worker's last task: an idle worker keeps the memory it took
        while child.poll() is None:
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    name = _name(proc)
                except psutil.Error:
                    continue
                if name != "ray::IDLE":
                    busy[proc.pid] = name
                elif proc.pid in busy:
                    name = f"{busy[proc.pid]}, idle"
                if rss > peak["rss"]:
                    peak.update(rss=rss, name=name)
                total += rss
            peak["tree"] = max(peak["tree"], total)
            peak["processes"] = max(peak["processes"], len(procs))
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    if child.returncode:
        sys.exit(f"{' '.join(command)} failed ({child.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return {"seconds": seconds, "peak": peak, "result": json.loads(lines[-1]) if lines else {}}


def _name(proc) -> str:
    line = proc.cmdline()
    if line and line[0].startswith("ray::"):  # a Ray worker, named by the task it runs
        task = line[0].split()[0].removeprefix("ray::")
        return {"MapBatches(run_source_task)": "read task", "MapBatches(run_chain_task)": "judge task",
                "run_phase_task": "phase task"}.get(task, "ray::" + task)
    if any("default_worker.py" in part for part in line):
        return "ray worker"
    if "--child" in line:
        return "driver"
    if any("forkserver" in part for part in line):
        return "worker"  # datatrove's pool
    return proc.name()


def _child_ours(config_path: str) -> None:
    """In a child: start Ray as `pipeline run` would, then time run()."""
    import ray

    from crawl2model.catalog import load_config
    from crawl2model.pipeline.runner import connect, run

    config, nodes = load_config(config_path)
    connect(config, address=None)
    try:
        started = time.perf_counter()
        run(config, nodes, show_progress=False)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
    finally:
        ray.shutdown()


def run_ours(folder: Path, tmp: Path, name: str, cpus: int, per_file: int, verify: bool, cli: bool) -> dict:
    out = tmp / name
    config_path = tmp / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(c2m_config(folder, out, cpus, per_file, verify)))
    if cli:
        command = [PIPELINE_CLI, "run", str(config_path), "--no-progress"]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "ours", str(config_path)]
    run = watched(command, tmp / f"{name}.log")
    stage = out / "stages/dedup"
    removed, duplicates = outcome(stage / "kept", stage / "removed", lambda t: t.column("minhash_cluster_size"))
    stats = json.loads((stage / "stats.json").read_text())
    return {"seconds": run["result"]["seconds"] if not cli else run["seconds"], "command_seconds": run["seconds"],
            "peak": run["peak"], "removed": removed, "duplicates": duplicates, "stats": stats}


def outcome(kept: Path, removed: Path, cluster_size) -> tuple[set[str], set[str]]:
    """(ids removed, ids in a cluster of 2 or more documents) from a run's kept and removed Parquet."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = {}
    for name, folder in (("kept", kept), ("removed", removed)):
        files = sorted(folder.glob("*.parquet"))
        tables[name] = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
    gone = set(tables["removed"].column("id").to_pylist()) if tables["removed"] else set()
    duplicates = set()
    for table in filter(None, tables.values()):
        duplicates.update(table.filter(pc.greater(cluster_size(table), 1)).column("id").to_pylist())
    return gone, duplicates


def _child_datatrove(folder: str, out_dir: str, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.logging import logger

    logger.remove()
    out = Path(out_dir)
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=1, hash_config=HashConfig())

    def reader():
        return ParquetReader(folder, glob_pattern="*.parquet", text_key="text", id_key="id")

    steps = [
        ("signature", [reader(), MinhashDedupSignature(output_folder=str(out / "signatures"), config=config)], workers),
        ("buckets", [MinhashDedupBuckets(input_folder=str(out / "signatures"), output_folder=str(out / "buckets"),
                                         config=config)], BANDS),
        ("cluster", [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"),
                                         config=config, save_cluster_size=True)], 1),
        ("filter", [reader(), MinhashDedupFilter(input_folder=str(out / "remove_ids"), load_cluster_sizes=True,
                                                 exclusion_writer=ParquetWriter(str(out / "removed"))),
                    ParquetWriter(str(out / "kept"))], workers),
    ]
    seconds = {}
    started = time.perf_counter()
    for name, pipeline, tasks in steps:
        step_started = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(out / "logs" / name),
                              skip_completed=False).run()
        seconds[name] = time.perf_counter() - step_started
    print(json.dumps({"seconds": time.perf_counter() - started, "steps": seconds}), flush=True)


def _child_lsh(folder: str) -> None:
    """In a child: datasketch's MinHashLSH (14 bands x 8 rows) holding every document, as an
    in-memory index does; signatures computed by ours (fast) and passed in as hash values."""
    import pyarrow.parquet as pq
    from datasketch import MinHash, MinHashLSH

    from crawl2model.stages import _minhash

    lsh = MinHashLSH(num_perm=BANDS * ROWS, params=(BANDS, ROWS))
    perms = MinHash(num_perm=BANDS * ROWS, seed=1).permutations
    started = time.perf_counter()
    for path in sorted(Path(folder).glob("*.parquet")):
        table = pq.read_table(path)
        sigs = _minhash.signatures(*_minhash.shingle_hashes(table.column("text").to_pylist(), NGRAM), BANDS * ROWS, 1)
        for doc_id, sig in zip(table.column("id").to_pylist(), sigs):
            minhash = MinHash(hashvalues=sig, permutations=perms, scheme="affine32")
            lsh.insert(doc_id, minhash, check_duplication=False)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def run_lsh(folder: Path, tmp: Path, size: int) -> dict:
    run = watched([sys.executable, str(Path(__file__).resolve()), "--child", "lsh", str(folder)],
                  tmp / f"lsh-{size}.log")
    return {"seconds": run["result"]["seconds"], "peak": run["peak"]}


def run_datatrove(folder: Path, tmp: Path, workers: int) -> dict:
    import pyarrow.compute as pc

    out = tmp / "datatrove"
    env = dict(os.environ)
    if importlib.util.find_spec("tokenizers") is None:
        # datatrove.pipeline.dedup's __init__ imports its exact-substring steps, which import the
        # `tokenizers` package at module level; the MinHash steps never use it. A stub on the
        # PYTHONPATH of datatrove's process and its workers stands in for it.
        stub = tmp / "stubs/tokenizers"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("")
        (stub / "processors.py").write_text("class TemplateProcessing:\n    pass\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stub.parent), env.get("PYTHONPATH")]))
    run = watched([sys.executable, str(Path(__file__).resolve()), "--child", "datatrove", str(folder), str(out),
                   str(workers)], tmp / "datatrove.log", env)
    removed, duplicates = outcome(out / "kept", out / "removed",
                                  lambda t: pc.struct_field(t.column("metadata"), "minhash_cluster_size"))
    return {"seconds": run["result"]["seconds"], "command_seconds": run["seconds"], "steps": run["result"]["steps"],
            "peak": run["peak"], "removed": removed, "duplicates": duplicates}


# ---------------------------------------------------------------- report

def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def caught(removed: set[str], ids: list[str], copies: np.ndarray, source: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the planted (copy, source) pairs under `mask` with one of the two removed."""
    pairs = [(ids[c], ids[source[c]]) for c in copies[mask]]
    return sum(a in removed or b in removed for a, b in pairs) / max(1, len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200_000, help="documents of the side-by-side runs")
    parser.add_argument("--sizes", default="50000,1000000",
                        help="more corpus sizes for our peak memory (comma-separated; '' for none)")
    parser.add_argument("--datasketch-docs", type=int, default=5000, help="documents datasketch is timed on")
    parser.add_argument("--docs-per-file", type=int, default=12_500, help="rows per Parquet file = docs_per_shard")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--no-web", action="store_true", help="NLTK sentences only (skips ~20 s of extraction)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "ours":
            _child_ours(*rest)
        elif kind == "lsh":
            _child_lsh(*rest)
        else:
            _child_datatrove(rest[0], rest[1], int(rest[2]))
        return

    sizes = sorted({args.docs, *(int(s) for s in args.sizes.split(",") if s.strip())})
    started = time.perf_counter()
    pool = sentences(web=not args.no_web)
    pool_seconds = time.perf_counter() - started
    started = time.perf_counter()
    texts, source, _ = make_corpus(max(sizes), pool, args.seed)
    generate_seconds = time.perf_counter() - started
    ids = doc_ids(len(texts))
    main_texts, main_source = texts[:args.docs], source[:args.docs]
    copies, sims = planted_jaccard(main_texts, main_source)
    words = np.array([t.count(" ") + 1 for t in main_texts[:20000]])
    print(f"{len(pool):,} sentences ({pool_seconds:.1f} s); {max(sizes):,} documents generated in "
          f"{generate_seconds:.1f} s; {os.cpu_count()} cores", flush=True)
    print(f"first {args.docs:,}: {len(copies):,} planted copies, {int((sims >= 0.8).sum()):,} of them with true "
          f"Jaccard >= 0.8 to their source; words per document: median {np.median(words):.0f}, "
          f"mean {words.mean():.0f}", flush=True)

    # 1. signatures, one process
    subset = main_texts[:args.datasketch_docs]
    rates = {"ds": datasketch_rate(subset, False), "ds_perm": datasketch_rate(subset, True),
             "ours_subset": ours_rate(subset, args.docs_per_file)}
    rates["ours_all"] = ours_rate(main_texts, args.docs_per_file)
    print("\nsignatures, 128 permutations, one process")
    print(f"{'system':<52} {'docs':>8} {'docs/s':>9} {'vs datasketch':>14} {'vs ds perms':>12}")
    for key, label, docs in [("ds", "datasketch MinHash + update_batch", len(subset)),
                             ("ds_perm", "datasketch, permutations= precomputed", len(subset)),
                             ("ours_subset", "crawl2model shingle_hashes + signatures", len(subset)),
                             ("ours_all", "crawl2model shingle_hashes + signatures", len(main_texts))]:
        print(f"{label:<52} {docs:>8,} {rates[key]:>9,.0f} {rates[key] / rates['ds']:>13.1f}x "
              f"{rates[key] / rates['ds_perm']:>11.1f}x", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp_name:
        tmp = Path(tmp_name)
        folders = {}
        for size in sizes:
            folders[size] = tmp / f"input-{size}"
            write_parquet(texts[:size], folders[size], args.docs_per_file)
        os.sync()  # else the first run competes with the kernel writing these files back
        del texts, pool
        gc.collect()
        runs = {}
        if not args.skip_datatrove:
            print(f"\nrunning datatrove on {args.docs:,} (load average {os.getloadavg()[0]:.2f}) ...", flush=True)
            runs["dt"] = run_datatrove(folders[args.docs], tmp, args.cpus)
        for key, verify, cli in [("inproc", False, False), ("inproc_verify", True, False),
                                 ("cli", False, True), ("cli_verify", True, True)]:
            print(f"running crawl2model {key} on {args.docs:,} (load average {os.getloadavg()[0]:.2f}) ...",
                  flush=True)
            runs[key] = run_ours(folders[args.docs], tmp, key, args.cpus, args.docs_per_file, verify, cli)
        scaling = {args.docs: runs["inproc_verify"]}
        for size in sizes:
            if size != args.docs:
                print(f"running crawl2model (verify) on {size:,} (load average {os.getloadavg()[0]:.2f}) ...",
                      flush=True)
                scaling[size] = run_ours(folders[size], tmp, f"size-{size}", args.cpus, args.docs_per_file, True,
                                         False)
        lsh = {}
        for size in sizes:
            print(f"running datasketch MinHashLSH on {size:,} ...", flush=True)
            lsh[size] = run_lsh(folders[size], tmp, size)

    n = args.docs
    above = sims >= 0.8
    ref = runs.get("dt", runs["inproc"])
    ref_name = "datatrove" if "dt" in runs else "ours verify=false"
    print(f"\nwhole stage, {n:,} documents, 5-grams, {BANDS} bands x {ROWS} rows, {args.cpus} CPUs")
    print(f"{'system':<38} {'removed':>8} {'in dups':>8} {'seconds':>8} {'docs/s':>7} {'vs dt':>6} "
          f"{'agree rm':>8} {'agree dup':>9} {'J>=.8':>6} {'J<.8':>6}")
    labels = {"dt": "datatrove, 4 steps, 2 workers",
              "inproc": "crawl2model run(), verify=false", "inproc_verify": "crawl2model run(), verify=true",
              "cli": "crawl2model CLI total, verify=false", "cli_verify": "crawl2model CLI total, verify=true"}
    for key, label in labels.items():
        if key not in runs:
            continue
        r = runs[key]
        vs = f"{runs['dt']['seconds'] / r['seconds']:>5.2f}x" if "dt" in runs else f"{'-':>6}"
        print(f"{label:<38} {len(r['removed']):>8,} {len(r['duplicates']):>8,} {r['seconds']:>8.1f} "
              f"{n / r['seconds']:>7,.0f} {vs} {1 - len(r['removed'] ^ ref['removed']) / n:>8.2%} "
              f"{1 - len(r['duplicates'] ^ ref['duplicates']) / n:>9.2%} "
              f"{caught(r['removed'], ids, copies, main_source, above):>6.1%} "
              f"{caught(r['removed'], ids, copies, main_source, ~above):>6.1%}")
    print(f"in dups: documents in a cluster of 2 or more. agree rm / agree dup: fraction of the {n:,} documents "
          f"on which it and {ref_name} agree (both remove or both keep; both or neither in a cluster). "
          f"J>=.8 / J<.8: planted (copy, source) pairs with one of the two removed, of the "
          f"{int(above.sum()):,} with true Jaccard >= 0.8 and the {int((~above).sum()):,} below.")
    if "dt" in runs:
        dt, ours = runs["dt"]["removed"], runs["inproc"]["removed"]
        in_cluster = runs["inproc"]["duplicates"]
        print(f"removed by datatrove only: {len(dt - ours):,} ({len((dt - ours) & in_cluster):,} of them in a cluster "
              f"of ours too, which keeps the smallest id); by ours (verify=false) only: {len(ours - dt):,} "
              f"({len((ours - dt) & runs['dt']['duplicates']):,} in a cluster of datatrove's). "
              f"datatrove steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs["dt"]["steps"].items()))
    order = ["signatures", "candidates", "shingles", "verify", "clusters"]
    for key in ("inproc", "inproc_verify"):
        stats = runs[key]["stats"]
        phases = sorted(stats["phases"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
        print(f"ours {key}: task-seconds per phase: " + ", ".join(f"{k} {p['cpu_seconds']:.1f}" for k, p in phases)
              + f", judge {stats['cpu_seconds']:.1f}; counters: {stats['counters']}")

    print("\npeak RSS, polled every 0.2 s over the child's process tree")
    print(f"{'system':<38} {'docs':>10} {'seconds':>8} {'docs/s':>7} {'removed':>8} {'largest':>9} "
          f"{'which':<24} {'tree':>9}")
    memory = [(labels["dt"], n, runs["dt"])] if "dt" in runs else []
    memory += [(labels["inproc"], n, runs["inproc"])]
    memory += [(labels["inproc_verify"], size, scaling[size]) for size in sorted(scaling)]
    memory += [("datasketch MinHashLSH, in memory", size, lsh[size]) for size in sorted(lsh)]
    for label, size, r in memory:
        removed = f"{len(r['removed']):>8,}" if "removed" in r else f"{'-':>8}"
        print(f"{label:<38} {size:>10,} {r['seconds']:>8.1f} {size / r['seconds']:>7,.0f} {removed} "
              f"{mb(r['peak']['rss']):>9} {r['peak']['name'][:24]:<24} {mb(r['peak']['tree']):>9}")
    print("largest: the peak RSS of any one process; tree: the peak of the tree's RSS summed (shared pages "
          "counted in each process). MinHashLSH: the index alone (insert, no query), signatures by ours; its "
          "seconds are signatures + inserts")

if __name__ == "__main__":
    main()
