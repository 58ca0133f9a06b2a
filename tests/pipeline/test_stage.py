"""What every stage inherits: its code version follows the code it runs."""
from __future__ import annotations

from crawl2model.pipeline.stage import local_sources

from crawl2model.catalog import resolve_stage


def test_code_version_covers_the_modules_a_stage_imports_and_no_others():
    names = {path.name for path in local_sources("crawl2model.stages.quality_classifier")}
    assert {"quality_classifier.py", "_scoring.py", "_filter.py", "model.py", "text.py", "fasttext_file.py"} <= names
    assert "_minhash.py" not in names and "runner.py" not in names  # another stage's helper; the runner
    assert {p.name for p in local_sources("crawl2model.stages.minhash_dedup")} >= {"minhash_dedup.py", "_minhash.py"}
    assert "_scoring.py" not in {p.name for p in local_sources("crawl2model.stages.minhash_dedup")}


def test_code_version_is_stable_and_differs_between_stages():
    quality = resolve_stage("quality_classifier")
    assert quality.code_version() == quality.code_version() != resolve_stage("toxicity_classifier").code_version()
