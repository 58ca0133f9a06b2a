"""What the driver does per input file stays what it must be as a crawl grows: calls counted, not
timed (bench/plan_scale.py times them; docs/scaling.md). On an object store each such call is a
request, so a call per listed file is a request per object."""
from __future__ import annotations

import os
import threading
import uuid
from collections import Counter

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.records import DoneRecord
from crawl2model.pipeline.storage import expand_inputs

ASKED = ("info", "isfile", "isdir", "exists", "size")  # what tells a file from a folder, one path at a time


def count_calls(monkeypatch, cls, names=ASKED) -> Counter:
    """Count each outermost call of `names` on `cls` (exists calling info is one call)."""
    calls, depth = Counter(), threading.local()
    for name in names:
        original = getattr(cls, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            inside = getattr(depth, "value", 0)
            if inside == 0:
                calls[_name] += 1
            depth.value = inside + 1
            try:
                return _original(self, *args, **kwargs)
            finally:
                depth.value = inside

        monkeypatch.setattr(cls, name, wrapper)
    return calls


def memory_crawl(files: int) -> tuple[str, list[str]]:
    """`files` WARC files in two folders on memory://, and a folder whose name the glob matches too."""
    fs, root = fsspec.filesystem("memory"), f"/crawl-{uuid.uuid4().hex[:8]}"
    paths = [f"{root}/seg-{i % 2}/warc/cc-{i:05d}.warc.gz" for i in range(files)]
    for path in paths:
        fs.pipe_file(path, b"WARC")
    fs.pipe_file(f"{root}/seg-0/warc/folder.warc.gz/inside.txt", b"not an input")
    return root, [f"memory://{p}" for p in paths]


def test_a_glob_is_expanded_from_its_own_listing_not_a_call_per_file(monkeypatch):
    asked = {}
    for files in (3, 60):
        root, paths = memory_crawl(files)
        calls = count_calls(monkeypatch, MemoryFileSystem)
        found = expand_inputs([f"memory://{root}/*/warc/*.warc.gz"], {})
        assert found == sorted(paths)  # the folder matching the glob is no input
        asked[files] = sum(calls.values())
        monkeypatch.undo()
    assert asked[3] == asked[60] < 3  # was a call per match, and more: 6 and 63


def test_a_listed_path_costs_one_call(monkeypatch):
    root, paths = memory_crawl(20)
    calls = count_calls(monkeypatch, MemoryFileSystem)
    listed = [*paths, f"memory://{root}/missing.warc.gz", f"memory://{root}/seg-0/warc/folder.warc.gz"]
    assert expand_inputs(listed, {}) == sorted(paths)
    assert sum(calls.values()) == len(listed)  # was exists, then isfile for each that exists: 43


def test_local_links_are_followed_as_before(tmp_path):
    """A local glob lists a symbolic link as neither file nor folder: where it leads decides."""
    (tmp_path / "in").mkdir()
    (tmp_path / "elsewhere.warc.gz").write_bytes(b"WARC")
    (tmp_path / "in" / "a.warc.gz").write_bytes(b"WARC")
    os.symlink(tmp_path / "elsewhere.warc.gz", tmp_path / "in" / "linked.warc.gz")
    os.symlink(tmp_path / "nowhere.warc.gz", tmp_path / "in" / "broken.warc.gz")
    (tmp_path / "in" / "folder.warc.gz").mkdir()
    os.symlink(tmp_path / "in" / "folder.warc.gz", tmp_path / "in" / "folder-link.warc.gz")
    found = expand_inputs([str(tmp_path / "in" / "*.warc.gz")], {})
    assert found == [str(tmp_path / "in" / "a.warc.gz"), str(tmp_path / "in" / "linked.warc.gz")]
    assert expand_inputs([str(tmp_path / "in" / "linked.warc.gz"), str(tmp_path / "in" / "broken.warc.gz")], {}) == \
        [str(tmp_path / "in" / "linked.warc.gz")]


def test_a_local_path_is_not_parsed_as_a_url(tmp_path, monkeypatch):
    """The driver reads every done record, and checks the size (and sha256) of every file a cached
    stage wrote, by local paths: none of them is parsed as a URL, and each gets what parsing it
    would have given."""
    monkeypatch.chdir(tmp_path)
    for path in (str(tmp_path / "a.json"), f"{tmp_path}/", "relative/b.json", "./c.json", "~/d.json", "/", "file.json"):
        assert storage.filesystem(path) == fsspec.core.url_to_fs(path)
    record = str(tmp_path / "_done" / "00001.json")
    records.write(record, DoneRecord(fingerprint="f", unit="00001"))
    parsed = Counter()
    for name in ("url_to_fs", "get_fs_token_paths"):  # fsspec.open parses through the second
        original = getattr(fsspec.core, name)
        monkeypatch.setattr(fsspec.core, name, lambda *a, _original=original, _name=name, **k: (
            parsed.update([_name]), _original(*a, **k))[1])
    for _ in range(5):
        assert records.read(record, DoneRecord).unit == "00001"
        assert storage.size(record) == len(open(record, "rb").read())
        assert storage.sha256_of(record) == storage.sha256_bytes(open(record, "rb").read())
    assert not parsed  # was a parse per read, size and sha256: 15
    storage.write_bytes_atomic("memory://scale/e.json", b"{}")
    assert storage.size("memory://scale/e.json") == 2 and parsed["url_to_fs"] == 2  # URLs still are


class _UnitsScannedOnce(tuple):
    """A shard tuple that counts its searches (each is a scan of every shard)."""

    searched = 0

    def index(self, *args):
        type(self).searched += 1
        return super().index(*args)


def test_a_phases_jobs_look_each_shard_up_without_scanning_them_all():
    """Building a phase's jobs searched the tuple of every shard once per shard: 86 s at 100,000."""
    from crawl2model.pipeline.global_stage import Phase, PhaseContext, phase_jobs

    shards = [(f"{i:05d}-00000", f"/run/stages/x/kept/part-{i:05d}-00000.parquet") for i in range(2000)]
    context = PhaseContext("/run/stages/d/phases", 64, _UnitsScannedOnce(u for u, _ in shards), tuple(p for _, p in shards))
    jobs = phase_jobs(Phase("signatures", "shards"), context, shards)
    assert [job[0].shard for job in jobs] == list(range(2000)) and _UnitsScannedOnce.searched == 0
    assert context.for_unit("01999-00000").shard == 1999


def test_the_manifest_entry_of_a_stage_does_not_grow_with_its_shards(tmp_path):
    """A stage lists its shards once, in its own folder; its manifest entry names that listing."""
    from crawl2model.pipeline.records import FileInfo, ManifestEntry
    from crawl2model.pipeline.summary import stage_files, write_listing

    sizes = {}
    for shards in (10, 2000):
        root = str(tmp_path / str(shards))
        kept = [FileInfo(path=f"stages/x/kept/part-{i:05d}.parquet", rows=500, bytes=10**6, sha256=f"{i:064x}")
                for i in range(shards)]
        entry = ManifestEntry(status="done", fingerprint="f", listing=write_listing(root, "x", kept, []))
        assert stage_files(root, entry).kept == kept
        sizes[shards] = len(entry.model_dump_json())
    assert sizes[2000] - sizes[10] < 20  # the counts' digits only
