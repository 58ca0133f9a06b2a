"""report.html: one self-contained page (inline SVG plots and CSS, no script, nothing fetched) on
what a run did, written at the end of `pipeline run` and by `pipeline report RUN_DIR`.

Sections find their stages by type (the run's config.yaml, else manifest.json), read counts and
histograms from stats.json, artifacts (model.json, index.json, metrics.jsonl) from the stages that
made them, and documents from bounded samples of shards. The same run gives the same bytes: no
clock is read, and the plots are deterministic (report/plots.py).

The top layer: it reads the run through `crawl2model.pipeline`, and nothing below imports it.
`write.py` assembles the page; this file imports nothing, so the section modules can import each
other as `crawl2model.report.<module>` without an import circle through the package.
"""
