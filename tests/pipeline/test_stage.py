"""What every stage inherits: its code version follows the code it runs."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from crawl2model.pipeline.stage import local_sources

from crawl2model.catalog import resolve_stage


def test_code_version_covers_the_modules_a_stage_imports_and_no_others():
    names = {path.name for path in local_sources("crawl2model.stages.quality_classifier")}
    assert {"quality_classifier.py", "_scoring.py", "_filter.py", "model.py", "text.py", "fasttext_file.py"} <= names
    assert "_minhash.py" not in names and "runner.py" not in names  # another stage's helper; the runner
    assert {p.name for p in local_sources("crawl2model.stages.minhash_dedup")} >= {"minhash_dedup.py", "_minhash.py"}
    assert "_scoring.py" not in {p.name for p in local_sources("crawl2model.stages.minhash_dedup")}


def fresh_code_version(type_name: str, pythonpath: str | None = None) -> str:
    """The code version of a stage computed in a new interpreter (as a later run, or a worker, does)."""
    script = f"from crawl2model.catalog import resolve_stage; print(resolve_stage({type_name!r}).code_version())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [pythonpath, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_code_version_is_stable_and_differs_between_stages():
    quality = resolve_stage("quality_classifier")
    assert quality.code_version() == quality.code_version() != resolve_stage("toxicity_classifier").code_version()
    # another process, with its own imports, hash seed and object ids, finds the same version
    assert fresh_code_version("quality_classifier") == quality.code_version()
    assert len(quality.code_version()) == 16 and int(quality.code_version(), 16) >= 0


PROBE = "c2m_code_version_probe"  # a user's stage package, written in the test


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A stage package on sys.path: stage.py (the stage) imports helper.py; unrelated.py is not imported."""
    root = tmp_path / PROBE
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "unrelated.py").write_text("SOMETHING = 1\n")
    (root / "stage.py").write_text(textwrap.dedent(f"""\
        from crawl2model.pipeline.stage import Stage
        from {PROBE}.helper import double


        class Doubler(Stage):
            type_name = "doubler"

            def process(self, batch):
                return batch
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m == PROBE or m.startswith(PROBE + ".")]:
        del sys.modules[name]


def test_code_version_changes_with_the_source_it_runs_and_only_with_it(probe_package):
    stage = importlib.import_module(f"{PROBE}.stage").Doubler
    assert {p.name for p in local_sources(stage.__module__)} == {"stage.py", "helper.py"}
    before = stage.code_version()
    assert stage.code_version() == before == fresh_code_version(f"{PROBE}.stage:Doubler", str(probe_package.parent))

    unrelated = probe_package / "unrelated.py"
    unrelated.write_text("SOMETHING = 2  # a module the stage never imports\n")
    assert stage.code_version() == before

    helper = probe_package / "helper.py"
    original = helper.read_text()
    helper.write_text(original.replace("2 * x", "x + x"))  # an imported module: its code is the stage's code
    edited = stage.code_version()
    assert edited != before
    assert fresh_code_version(f"{PROBE}.stage:Doubler", str(probe_package.parent)) == edited
    helper.write_text(original)  # back as it was: the version it had
    assert stage.code_version() == before

    module = probe_package / "stage.py"
    module.write_text(module.read_text() + "\n# a comment is a change too\n")
    assert stage.code_version() not in (before, edited)
