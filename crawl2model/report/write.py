"""The report of a run, rendered and written (see the package's docstring)."""
from __future__ import annotations

from crawl2model.pipeline import storage
from crawl2model.report import curation, documents, models, plots
from crawl2model.report.page import esc, page
from crawl2model.report.run import Run

REPORT = "report.html"


def render(run_dir: str) -> str:
    """The report of the run in `run_dir` (a path or an fsspec URL), as HTML."""
    run = Run(run_dir)
    with plots.style():
        sections = [curation.funnel(run), curation.removals(run), curation.languages(run), curation.lengths(run),
                    documents.dedup(run), models.classifiers(run), models.tokenizer(run), models.training(run),
                    documents.examples(run)]
    manifest = run.manifest
    # no path of this machine: the same run moved or written elsewhere gives the same page
    subtitle = (f"run <b>{esc(manifest.name)}</b> · "
                f"updated {esc(manifest.updated)} · config {esc(manifest.config_fingerprint)} · "
                + ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(manifest.packages.items())))
    return page(f"crawl2model report: {manifest.name}", subtitle, sections)


def write_report(run_dir: str, out: str | None = None) -> str:
    """Write the report of `run_dir` to `out` (default: report.html in the run) and return its path."""
    path = out or storage.join(run_dir, REPORT)
    storage.write_bytes_atomic(path, render(run_dir).encode("utf-8"))
    return path
