"""report.html: self-contained, the same bytes for the same run, crawled text escaped, every
section there when the run has its data; and, on a real run of examples/crawl.yaml, opened in a
real headless Chromium without a console error or a single request."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from crawl2model.cli import app
from crawl2model.pipeline import records, storage
from crawl2model.pipeline.records import Manifest, ManifestEntry, StageStats
from crawl2model.pipeline.summary import manifest_path, stage_files, write_listing
from crawl2model.report.run import Run
from crawl2model.report.write import is_current, render, write_report

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["funnel", "removals", "languages", "lengths", "dedup", "classifiers", "tokenizer", "training", "ablation",
            "examples"]
NEEDS = {"languages": {"langid"}, "dedup": {"exact_dedup", "minhash_dedup"}, "tokenizer": {"train_tokenizer", "tokenize"},
         "classifiers": {"train_classifier", "quality_classifier", "toxicity_classifier"},
         "training": {"pretrain", "sft", "dpo"}, "ablation": {"ablation"}}  # the sections a run without these stage types lacks
SCRIPT = "<script>alert(1)</script>"
cli = CliRunner()


class Tags(HTMLParser):
    """The tags of a page with their attributes, and the text of each <section> by its id."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.sections: dict[str, str] = {}
        self._section = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self._section = dict(attrs)["id"]
            self.sections[self._section] = ""

    def handle_data(self, data):
        if self._section:
            self.sections[self._section] += data


def assert_self_contained(page: str) -> None:
    tags = Tags(page).tags
    names = {tag for tag, _ in tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}, names
    links = [value for _, attrs in tags for key, value in attrs.items() if key in ("src", "href", "xlink:href")]
    assert links and all(value.startswith("#") for value in links), links  # in-page anchors and SVG references only
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", page)


# --- a small run directory, written with the project's own record and storage writers -------------

def write_stage(root: Path, name: str, kind: str, kept: pa.Table, removed: pa.Table | None = None, **stats):
    """A finished stage: its shards, stats.json, and the manifest entry that lists them."""
    def shard(which: str, table: pa.Table):
        return storage.write_parquet(f"{root}/stages/{name}/{which}/part-00000-00000.parquet", table).relative_to(str(root))

    docs_in = kept.num_rows + (removed.num_rows if removed is not None else 0)
    listing = write_listing(str(root), name, [shard("kept", kept)],
                            [shard("removed", removed)] if removed is not None else [])
    entry = ManifestEntry(status="done", fingerprint=name, type=kind, docs_in=docs_in, docs_out=kept.num_rows,
                          listing=listing)
    records.write(f"{root}/stages/{name}/stats.json",
                  StageStats(stage=name, type=kind, fingerprint=name, docs_in=docs_in, docs_out=kept.num_rows, **stats))
    return entry


@pytest.fixture
def small_run(tmp_path) -> Path:
    """A reader, a filter whose removed document holds a script tag, and a training stage's metrics."""
    root = tmp_path / "run"
    texts = ["The river rose after a week of rain, and the mill stopped.", "Roads to the old quarry were closed."]
    kept = pa.table({"id": ["a", "b"], "url": ["https://a.example/", "https://b.example/"], "text": texts,
                     "language": ["en", "en"]})
    removed = pa.table({"id": ["c"], "url": ['https://c.example/"><img src=x>'], "text": [f"Hi {SCRIPT} & bye"],
                        "language": ["en"], "drop_reason": ["gopher_quality:words<50"],
                        "drop_detail": pa.array([None], pa.string())})
    everything = pa.concat_tables([kept, removed.select(kept.column_names)])
    metrics = storage.write_file(f"{root}/stages/pretrain/artifact/metrics.jsonl", "".join(
        json.dumps(row) + "\n" for row in [{"step": 1, "loss": 7.5, "lr": 0.001}, {"step": 10, "loss": 5.0, "lr": 0.003,
                                                                                    "val_loss": 5.2}]).encode())
    manifest = Manifest(name="small", config_fingerprint="c0ffee", updated="2024-01-01T00:00:00Z", stages={
        "read": write_stage(root, "read", "read", everything, bytes_in=200, bytes_out=200),
        "quality": write_stage(root, "quality", "gopher_quality", kept, removed, bytes_in=200, bytes_out=100,
                               removed_by_reason={"gopher_quality:words<50": 1},
                               histograms={"words": {"edges": [0, 1, 2, 5, 10, 20, 50, 100],
                                                     "counts": [0, 0, 0, 0, 1, 2, 0, 0]}}),
        "pretrain": ManifestEntry(status="done", fingerprint="p", type="pretrain", docs_in=2, docs_out=2,
                                  artifact=[metrics.relative_to(str(root))])})
    records.write(manifest_path(str(root)), manifest)
    storage.write_bytes_atomic(f"{root}/config.yaml", yaml.safe_dump({"name": "small", "output_dir": str(root), "stages": [
        {"name": "quality", "type": "gopher_quality"}, {"name": "pretrain", "type": "pretrain"}]}).encode())
    return root


def test_the_report_is_self_contained_and_escapes_what_it_shows(small_run):
    page = render(str(small_run))
    assert_self_contained(page)
    assert "alert(1)" in page and SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; bye" in page
    assert '"><img' not in page  # a URL cannot close its attribute or open a tag either
    tags = Tags(page)
    assert [attrs["id"] for tag, attrs in tags.tags if tag == "section"] == SECTIONS
    contents = [attrs["href"] for tag, attrs in tags.tags if tag == "a"]
    assert contents == [f"#{name}" for name in SECTIONS]  # the table of contents


def test_sections_show_what_the_run_has_and_say_what_it_lacks(small_run):
    sections = Tags(render(str(small_run))).sections
    for name in ("dedup", "classifiers", "tokenizer", "ablation"):
        assert "not in this run" in sections[name]
    for name in ("funnel", "removals", "languages", "lengths", "training", "examples"):
        assert "not in this run" not in sections[name], name
    assert "<50" in sections["removals"]  # the rule's threshold, drawn on the histogram of `words`
    assert "val_loss 5.2" in sections["training"].replace("last ", "")


def test_the_ablation_section_sets_each_difference_against_the_seed_spread():
    from crawl2model.report import plots
    from crawl2model.report.ablation import _one

    def arm(stage: str, losses: list[float], bpb: float, spread: float | None) -> dict:
        return {"stage": stage, "documents": 10, "tokens": 1000, "epochs": 2.5,
                "runs": [{"losses": [[step + 1, loss] for step, loss in enumerate(losses)]}],
                "mean": {"reference": bpb, "acc": 0.25}, "std": {} if spread is None else {"reference": spread, "acc": 0}}

    found = {"seeds": [1, 2, 3], "budget": 2500, "steps": 3, "parameters": 1234, "seq_len": 8, "tokenizer": "bpe",
             "tasks": {"n": 20}, "arms": {"raw": arm("extract", [6, 5, 4], 2.5, 0.02),
                                          "<b>clean</b>": arm("dedup", [6, 4.5, 3.5], 2.25, 0.01)},
             "comparisons": [{"arms": ["raw", "<b>clean</b>"], "metric": "reference", "difference": 0.25,
                              "spread": 0.02, "beyond_spread": True, "says": "<b>clean</b> is lower by 0.2500"}]}
    with plots.style():
        html = _one("ablation", found)
    assert "2.5000 ± 0.0200" in html and "2.2500 ± 0.0100" in html and "<b>clean" not in html  # escaped
    assert "training loss of every arm" in html and "&lt;b&gt;clean&lt;/b&gt; is lower by 0.2500" in html
    assert "<td>yes</td>" in html
    found["seeds"] = [1]
    found["comparisons"][0].update(spread=None, beyond_spread=None)
    for about in found["arms"].values():
        about["std"] = {}
    with plots.style():
        html = _one("ablation", found)
    assert "±" not in html and "<td>(one seed)</td>" in html and "one seed: no spread" in html


def test_the_same_run_gives_the_same_bytes(small_run, tmp_path):
    first = write_report(str(small_run))
    assert first == f"{small_run}/report.html"
    again = write_report(str(small_run), str(tmp_path / "again.html"))
    assert Path(first).read_bytes() == Path(again).read_bytes()


def test_a_report_is_current_until_what_it_draws_changes(small_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(small_run, run)
    assert not is_current(str(run))  # no report yet
    write_report(str(run))
    assert is_current(str(run))
    manifest = records.read(manifest_path(str(run)), Manifest)
    manifest.updated, next(iter(manifest.stages.values())).cached = "later", True  # a cached rerun: the clock only
    records.write(manifest_path(str(run)), manifest)
    assert is_current(str(run))
    quality = manifest.stages["quality"]  # its listing, changed: the manifest names it by its sha256
    quality.listing = write_listing(str(run), "quality", stage_files(str(run), quality).kept, [])
    records.write(manifest_path(str(run)), manifest)
    assert not is_current(str(run))
    write_report(str(run))
    assert is_current(str(run))
    next(iter(manifest.stages.values())).docs_out = 1  # what the page draws
    records.write(manifest_path(str(run)), manifest)
    assert not is_current(str(run))


def test_a_run_on_an_object_store_gives_the_same_report(small_run):
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put(str(small_run), "/report-test/run", recursive=True)
    try:
        written = write_report("memory://report-test/run")
        assert written == "memory://report-test/run/report.html"
        assert memory.cat(written) == render(str(small_run)).encode()  # no local path in the page
    finally:
        memory.rm("/report-test", recursive=True)


def test_samples_are_bounded_and_spread_over_the_files(tmp_path):
    files = [storage.write_parquet(str(tmp_path / f"part-{i}.parquet"), pa.table({"id": [f"{i}-{j}" for j in range(100)]}))
             for i in range(5)]
    records.write(manifest_path(str(tmp_path)), Manifest(name="s"))
    sample = Run(str(tmp_path)).sample(files, ["id", "absent"], rows=12, max_files=3)
    assert sample.column_names == ["id"]
    assert sample["id"].to_pylist() == [f"{i}-{j}" for i in (0, 2, 4) for j in range(4)]  # first, middle, last file


def test_the_report_command(small_run, tmp_path):
    result = cli.invoke(app, ["report", str(small_run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    missing = cli.invoke(app, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no manifest.json" in missing.output


def test_a_report_that_fails_after_a_run_is_a_warning(tmp_path, capsys):
    from crawl2model.cli import _write_report_after_run

    _write_report_after_run(str(tmp_path / "nothing"))  # what `pipeline run` calls last: it must not raise
    assert "warning: no report.html (FileNotFoundError: no manifest.json" in capsys.readouterr().err


# --- the session's run of examples/crawl.yaml (every stage) ------------------------------------------

@pytest.fixture(scope="module")
def example_run(demo_run, tmp_path_factory) -> tuple[Path, Path, dict]:
    """(run dir, its report, its config): the report is written into a temporary folder, as the
    run is shared by other tests and none writes into it."""
    run_dir, _ = demo_run
    report = Path(write_report(str(run_dir), str(tmp_path_factory.mktemp("report") / "report.html")))
    return run_dir, report, yaml.safe_load((run_dir.parent / "crawl.yaml").read_text())


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_run_has_a_section_for_each_kind_of_stage(example_run):
    run_dir, report, config = example_run
    page = report.read_text()
    assert_self_contained(page)
    assert render(str(run_dir)) == page  # the same bytes when written again
    types = {stage["type"] for stage in config["stages"]}
    sections = Tags(page).sections
    for name in SECTIONS:
        present = not NEEDS.get(name) or bool(NEEDS[name] & types)
        assert ("not in this run" not in sections[name]) == present, name
    if NEEDS["dedup"] & types:  # the planted duplicates, beside what each duplicates
        assert page.count('<div class="pair">') >= 2 and "<mark>" in page
    print(f"report.html of examples/crawl.yaml: {len(page.encode()):,} bytes")


def chromium():
    """A headless Chromium under selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)


@pytest.mark.ray
@pytest.mark.slow
def test_the_report_opens_in_chromium(example_run, tmp_path):
    _, report, _ = example_run
    driver = chromium()
    try:
        driver.get(report.as_uri())
        assert [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"] == []
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched
        found = driver.execute_script("return [...document.querySelectorAll('section h2')].map(h => h.parentNode.id)")
        assert found == SECTIONS
        widths = driver.execute_script(
            "return [...document.querySelectorAll('svg')].map(svg => svg.getBoundingClientRect().width)")
        assert len(widths) > 10 and min(widths) > 100  # every plot drawn, none collapsed
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1200, height)  # the whole page in one screenshot
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    target = os.environ.get("CRAWL2MODEL_SCREENSHOT")
    if target:  # for docs/report.png: a palette keeps it a third of the size (max coverage keeps the thin red lines)
        from PIL import Image

        Image.open(io.BytesIO(png)).convert("RGB").quantize(256, Image.Quantize.MAXCOVERAGE).save(target, optimize=True)
    else:
        (tmp_path / "report.png").write_bytes(png)
