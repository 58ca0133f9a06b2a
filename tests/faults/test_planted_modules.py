"""Files in the directory a user runs from are not code the run imports: a `trafilatura.py` or a
`stages/` package planted there (a downloaded crawl, an untrusted checkout) never shadows the
installed libraries, neither in `pipeline validate` nor in the Ray workers of `pipeline run`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PLANT = "from pathlib import Path\n(Path(__file__).resolve().parent / 'RAN-{name}').write_text('planted code ran')\n"


@pytest.fixture
def planted(tmp_path) -> Path:
    folder = tmp_path / "cwd"
    (folder / "stages").mkdir(parents=True)
    (folder / "trafilatura.py").write_text(PLANT.format(name="trafilatura"))
    (folder / "stages" / "__init__.py").write_text(PLANT.format(name="stages"))
    (folder / "crawl.yaml").write_text(yaml.safe_dump({
        "name": "planted", "output_dir": str(tmp_path / "out"), "input": {"sample": {"documents": 40, "files": 1}},
        "stages": [{"name": "extract", "type": "extract"}]}))
    return folder


def pipeline(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed `pipeline` command, run from `folder`."""
    command = str(Path(sys.executable).with_name("pipeline"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([command, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_validate_does_not_import_modules_from_the_current_directory(planted):
    result = pipeline(planted, "validate", "crawl.yaml")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in planted.glob("RAN-*")) == []


@pytest.mark.ray
@pytest.mark.slow
def test_run_workers_do_not_import_modules_from_the_current_directory(planted):
    result = pipeline(planted, "run", "crawl.yaml", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in planted.glob("RAN-*")) == []
    assert (planted.parent / "out/stages/extract/stats.json").exists()
