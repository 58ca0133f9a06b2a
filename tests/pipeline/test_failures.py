"""What a failed run says: the stage and unit in one line, what to do, and the traceback in the log."""
from __future__ import annotations

import errno
import pickle

import pytest

from crawl2model.pipeline.failures import RUN_LOG, failed_unit, log_traceback, summary, what_to_do
from crawl2model.pipeline.worker import tag_stage, tag_unit


def raised(error: Exception, stage: str = "extract", unit: str = "shard 00002-00000") -> Exception:
    with pytest.raises(type(error)) as caught:
        with tag_stage(stage), tag_unit(unit):
            raise error
    return caught.value


def test_the_line_names_the_stage_the_unit_and_the_error():
    error = raised(ValueError("a page without a body\nsecond line"))
    assert summary(error) == "stage 'extract' failed on shard 00002-00000: ValueError: second line"


def test_the_tags_survive_pickling_as_they_cross_to_the_driver():
    error = pickle.loads(pickle.dumps(raised(KeyError("k"), unit="input file crawl/a.warc.gz")))
    assert failed_unit(error) == "input file crawl/a.warc.gz"
    wrapped = type("RayTaskError", (RuntimeError,), {"__module__": "ray.exceptions"})("a page of Ray's traceback")
    wrapped.__cause__ = error
    assert summary(wrapped).startswith("stage 'extract' failed on input file crawl/a.warc.gz: KeyError")


def test_the_innermost_unit_wins():
    with pytest.raises(ValueError) as caught:
        with tag_unit("outer"), tag_unit("inner"):
            raise ValueError("x")
    assert failed_unit(caught.value) == "inner"


def test_what_to_do_depends_on_the_error():
    full = raised(OSError(errno.ENOSPC, "no space left on device while writing out/part.parquet"))
    assert what_to_do(full, "crawl.yaml").startswith("free some space, then `pipeline run crawl.yaml` resumes")
    assert what_to_do(raised(ValueError("x")), "crawl.yaml").startswith("fix the cause (traceback in the log)")


def test_the_traceback_is_appended_to_the_run_log(tmp_path):
    first = log_traceback(str(tmp_path), raised(ValueError("first")))
    log_traceback(str(tmp_path), raised(ValueError("second")))
    assert first == f"{tmp_path}/{RUN_LOG}"
    text = (tmp_path / RUN_LOG).read_text()
    assert text.count("Traceback (most recent call last)") == 2
    assert "ValueError: first" in text and text.index("first") < text.index("second")


def test_a_log_that_cannot_be_written_is_no_second_error(tmp_path):
    (tmp_path / "logs").write_text("a file where the folder should be")
    assert log_traceback(str(tmp_path), raised(ValueError("x"))) is None
