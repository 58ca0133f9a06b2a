"""The report of a run, rendered and written (see the package's docstring)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.records import Manifest
from crawl2model.pipeline.summary import manifest_path
from crawl2model.report import ablation, curation, documents, models, plots
from crawl2model.report.page import esc, page
from crawl2model.report.run import Run

REPORT = "report.html"


def render(run_dir: str) -> str:
    """The report of the run in `run_dir` (a path or an fsspec URL), as HTML."""
    run = Run(run_dir)
    with plots.style():
        sections = [curation.funnel(run), curation.removals(run), curation.languages(run), curation.lengths(run),
                    documents.dedup(run), models.classifiers(run), models.tokenizer(run), models.training(run),
                    ablation.ablation(run), documents.examples(run)]
    manifest = run.manifest
    # no path of this machine: the same run moved or written elsewhere gives the same page
    subtitle = (f"run <b>{esc(manifest.name)}</b> · "
                f"updated {esc(manifest.updated)} · config {esc(manifest.config_fingerprint)} · "
                + ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(manifest.packages.items())))
    return page(f"crawl2model report: {manifest.name}", subtitle, sections, key=report_key(manifest))


def write_report(run_dir: str, out: str | None = None) -> str:
    """Write the report of `run_dir` to `out` (default: report.html in the run) and return its path."""
    path = out or storage.join(run_dir, REPORT)
    storage.write_bytes_atomic(path, render(run_dir).encode("utf-8"))
    return path


def is_current(run_dir: str) -> bool:
    """Whether the run's report.html was drawn from what the run holds now (its key matches), so
    a rerun served whole from the cache need not spend seconds drawing the same plots again."""
    manifest = records.read(manifest_path(run_dir), Manifest)
    return manifest is not None and _key_of(storage.join(run_dir, REPORT)) == report_key(manifest)


def report_key(manifest: Manifest) -> str:
    """What a report is drawn from: each stage's fingerprint, status, counts and files (the
    manifest without its clock: `updated`, wall times, whether this invocation was cached), and
    the code that draws it."""
    stages = {name: entry.model_dump(mode="json", exclude={"cached", "wall_seconds"})
              for name, entry in manifest.stages.items()}
    code = sorted((f.name, f.read_bytes()) for f in Path(__file__).parent.glob("*.py"))
    digest = hashlib.sha256(json.dumps([manifest.name, manifest.config_fingerprint, manifest.packages, stages],
                                       sort_keys=True).encode())
    for name, text in code:
        digest.update(name.encode() + b"\0" + text)
    return digest.hexdigest()[:32]


def _key_of(path: str) -> str | None:
    """The key in the report at `path`, or None when there is none."""
    head = (storage.read_bytes(path) or b"")[:2048].decode("utf-8", "replace")
    found = re.search(r'<meta name="crawl2model-report" content="([0-9a-f]*)">', head)
    return found.group(1) if found else None
