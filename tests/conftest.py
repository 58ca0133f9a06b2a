"""Shared fixtures: where the real data lives, and one local Ray for the tests that need it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Tests marked `shared` skip only when ../shared/data is absent."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA}")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def local_ray():
    """One embedded Ray (2 CPUs) for the whole session; the runner reuses it instead of starting its own."""
    import ray

    paths = [str(ROOT / "tests" / "pipeline"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))  # test stages, for workers and subprocesses
    sys.path.insert(0, paths[0])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    yield ray
    ray.shutdown()


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True and everything it started (Ray's
    raylet, GCS, workers), as a crash or an out-of-memory kill would."""
    session = os.getsid(process.pid)
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.getsid(pid) == session:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


@pytest.fixture(scope="session")
def killer():
    return kill_session


@pytest.fixture(scope="session")
def eval_pages(shared_data):
    """(url, html, with-snippets, without-snippets) for the 990 annotated pages of
    html-trafilatura-eval, decoded as the pipeline decodes."""
    import gzip
    import json

    from crawl2model.pipeline.charset import decode_html

    root = shared_data / "html-trafilatura-eval"
    annotations = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, item in annotations.items():
        path = next((p for p in (root / "eval" / f"{item['file']}.gz", root / "cache" / f"{item['file']}.gz")
                     if p.exists()), None)
        assert path is not None, f"page file {item['file']} for {url} is in neither eval/ nor cache/"
        html, _ = decode_html(gzip.decompress(path.read_bytes()), None)
        pages.append((url, html, item["with"], item["without"]))
    return pages


@pytest.fixture(scope="session")
def extracted_pages(eval_pages):
    """The eval pages through the default `extract` stage (url, text, drop_reason), in two
    processes; computed once per session for every test that needs real extracted text."""
    import multiprocessing

    import pyarrow as pa

    from crawl2model.stages.extract import Extract

    rows = 16  # small batches keep the two workers evenly loaded
    batches = [pa.table({"html": [p[1] for p in eval_pages[i:i + rows]], "url": [p[0] for p in eval_pages[i:i + rows]]})
               for i in range(0, len(eval_pages), rows)]
    # the stage's own code path: a bound `process` pickles by module reference
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outputs = pool.map(Extract().process, batches, chunksize=1)
    return pa.concat_tables(outputs).select(["url", "text", "drop_reason"])


@pytest.fixture(scope="session")
def compare_with_datatrove():
    """A function running one of our stages and datatrove's counterpart over the same texts and
    printing agreement and speed. Returns (our outputs, their verdicts, their documents, rate)."""
    import time

    import pyarrow as pa

    def compare(name, stage, reference, texts):
        from datatrove.data import Document

        started = time.perf_counter()
        ours = stage.process(pa.table({"text": texts}))
        our_ms = (time.perf_counter() - started) / len(texts) * 1e3
        reference.filter(Document(text="warm up", id="-"))  # load spaCy outside the timing
        documents = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
        started = time.perf_counter()
        theirs = [reference.filter(d) for d in documents]
        their_ms = (time.perf_counter() - started) / len(texts) * 1e3
        reasons = ours.column("drop_reason").to_pylist()
        disagree = [(i, o, t) for i, (o, t) in enumerate(zip(reasons, theirs)) if (o is None) != (t is True)]
        rate = 1 - len(disagree) / len(texts)
        print(f"\n{name} vs datatrove on {len(texts)} pages: agreement {rate:.2%}, {len(disagree)} disagree "
              f"{disagree[:10]}; {our_ms:.2f} ms/doc here, {their_ms:.2f} ms/doc datatrove")
        return ours, theirs, documents, rate

    return compare


@pytest.fixture(scope="session")
def judge_curation_fixtures(shared_data):
    """A function judging curation-fixtures' Wikipedia-linked page and random Common Crawl page with
    one of our filters, printing what the CC page trips. Returns (wiki verdict, CC verdict,
    whether datatrove's counterpart `reference` keeps the CC page)."""
    from datatrove.data import Document

    root = shared_data / "curation-fixtures"
    wiki = (root / "high_quality_wiki_reference.txt").read_text(encoding="utf-8")
    cc = (root / "low_quality_cc.txt").read_text(encoding="utf-8")

    def judge(stage, reference):
        measures = stage.measure(cc, "en")
        verdict = stage.judge(measures)
        print(f"\nlow_quality_cc.txt trips {verdict or f'no {stage.type_name} rule'}: "
              + ", ".join(f"{k}={v:.3g}" for k, v in measures.items()))
        return stage.judge(stage.measure(wiki, "en")), verdict, reference.filter(Document(text=cc, id="cc")) is True

    return judge


@pytest.fixture
def run_global(tmp_path):
    """A function running a global stage in this process, phase after phase, over tables written
    as Parquet shards (the runner's work without Ray). Returns (kept, removed, stage directory);
    a stage that makes an artifact writes it under `<stage directory>/run`."""
    import pyarrow as pa

    from crawl2model.pipeline import storage
    from crawl2model.pipeline.global_stage import PhaseContext
    from crawl2model.pipeline.worker import StageTask, StageWorker, run_phases

    def run(stage_type: str, options: dict, tables: list[pa.Table], partitions: int = 3, name: str = "dedup"):
        stage_dir = str(tmp_path / name)
        shards_in = [(f"{i:05d}", storage.write_parquet(str(tmp_path / f"in-{name}" / f"{i:05d}.parquet"), t).path)
                     for i, t in enumerate(tables)]
        task = StageTask(name, stage_type, options, "test", stage_dir)
        context = PhaseContext(f"{stage_dir}/phases", partitions, tuple(unit for unit, _ in shards_in),
                               tuple(path for _, path in shards_in), f"{stage_dir}/run", name)
        run_phases(task, context, shards_in)
        if not task.build().judges:  # it made an artifact under <stage_dir>/run and judges nothing
            return None, None, stage_dir
        worker = StageWorker(task, context)
        for unit, path in shards_in:
            worker.run_unit(unit, path)
        kept = [storage.read_parquet(p) for p in storage.list_files(f"{stage_dir}/kept", ".parquet")]
        removed = [storage.read_parquet(p) for p in storage.list_files(f"{stage_dir}/removed", ".parquet")]
        return (pa.concat_tables(kept, promote_options="default"),
                pa.concat_tables(removed, promote_options="default") if removed else None, stage_dir)

    return run


def _words(rng, count: int) -> list[str]:
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(count)]


def make_labelled_texts(count: int, seed: int = 0) -> list[dict]:
    """`count` texts, alternately `hq` and `lq`: words drawn from a shared vocabulary, and a third
    of them from a small vocabulary of the text's own class (a task a classifier can learn)."""
    import random

    vocabulary = random.Random(1234)
    shared, own = _words(vocabulary, 1500), {"hq": _words(vocabulary, 60), "lq": _words(vocabulary, 60)}
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = "hq" if i % 2 == 0 else "lq"
        words = [rng.choice(own[label]) if rng.random() < 0.3 else rng.choice(shared) for _ in range(rng.randint(8, 60))]
        rows.append({"id": f"doc-{i}", "text": " ".join(words).capitalize() + ".", "label": label})
    return rows


@pytest.fixture(scope="session")
def labelled_texts():
    """make_labelled_texts: seeded synthetic labelled texts (hq/lq)."""
    return make_labelled_texts


@pytest.fixture(scope="session")
def hq_model(tmp_path_factory) -> str:
    """A small fastText model trained on labelled_texts, positive label `hq` (with model.json)."""
    import pyarrow as pa

    from crawl2model.classifiers.train import FastTextSettings, train

    path = str(tmp_path_factory.mktemp("hq-model") / "model.bin")
    table = pa.Table.from_pylist(make_labelled_texts(1000)).select(["text", "label"])
    train(table, FastTextSettings(positive="hq", buckets=20_000, dim=16, epochs=20, seed=0), path)
    return path
