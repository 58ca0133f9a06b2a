"""The run's plan: one typed node per stage, carried unchanged from config load to the worker.

A `StageNode` holds the stage's class, its validated config, its parents, the run directory and,
once planned, its fingerprint; everything else (its folder, resources, done records) follows from
those. The reader of the inputs is the node `read`, with the `input:` config.

A fingerprint hashes a stage's type, options, code version, data files and its parents'
fingerprints, so a changed option re-runs that stage and everything after it, and nothing else.
Paths inside the run directory are hashed relative to it: a run moved elsewhere keeps its cache.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from crawl2model.pipeline import records, storage
from crawl2model.pipeline.global_stage import GlobalStage
from crawl2model.pipeline.sources import InputConfig, InputFile
from crawl2model.pipeline.stage import Resources, Stage, stage_path

SOURCE = "read"  # the implicit first stage: reads the inputs into shards
Materialize = Literal["all", "final"]  # which stages write their kept shards (RunConfig.materialize)


@dataclass(frozen=True)
class StageNode:
    name: str
    cls: type[Stage] | None  # None: the reader
    config: BaseModel  # the stage's validated options (the reader: `input:`)
    after: tuple[str, ...] = ()
    index: int = -1  # position in `stages:`, for messages (-1: the reader)
    run_dir: str = ""
    fingerprint: str = ""  # set when the run is planned
    materialize: Materialize = "all"  # as asked: the stage's `materialize`, else the run's
    # set when planned (kept_in_memory): the stages after it whose outputs hold its kept documents,
    # when it hands them on in memory instead of writing them; empty when it writes them
    kept_in: tuple[str, ...] = ()

    @property
    def is_source(self) -> bool:
        return self.cls is None

    @property
    def type_name(self) -> str:
        return SOURCE if self.cls is None else (self.cls.type_name or stage_path(self.cls))

    @property
    def directory(self) -> str:
        return storage.join(self.run_dir, "stages", self.name)

    @property
    def artifact_dir(self) -> str:
        """Where a stage that makes something (a tokenizer, token shards, a model) puts it."""
        return storage.join(self.directory, "artifact")

    @property
    def materialized(self) -> bool:
        """It writes its kept shards (else it hands them to the next stage in memory)."""
        return not self.kept_in

    @property
    def is_global(self) -> bool:
        return self.cls is not None and issubclass(self.cls, GlobalStage)

    @property
    def makes_artifact(self) -> bool:
        """It makes an artifact and removes nothing: its documents out are its documents in."""
        return self.is_global and self.cls.makes_artifact

    @property
    def needs_setup(self) -> bool:
        return self.cls is not None and self.cls.needs_setup()

    @property
    def resources(self) -> Resources:
        return Resources(cpus=0) if self.cls is None else self.cls.resources_for(self.config)

    def build(self) -> Stage:
        return self.cls(self.config)

    def done_path(self, unit: str) -> str:
        return storage.join(self.directory, "_done", f"{unit}.json")

    def finished(self, unit: str) -> records.DoneRecord | None:
        """The done record of a unit finished under this fingerprint, else None."""
        record = records.read(self.done_path(unit), records.DoneRecord)
        return record if record and record.fingerprint == self.fingerprint else None

    def done_records(self) -> list[records.DoneRecord]:
        found = (records.read(path, records.DoneRecord)
                 for path in storage.list_files(storage.join(self.directory, "_done"), ".json"))
        return sorted((r for r in found if r and r.fingerprint == self.fingerprint), key=lambda r: r.unit)

    def path(self, relative: str) -> str:
        """A path from a record of this run, made whole."""
        return storage.absolute(relative, self.run_dir)


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _source_hashes(*modules) -> list[str]:
    return [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in modules]


def source_inputs(inputs: InputConfig, seed: int, run_dir: str, files: list[InputFile]) -> dict:
    """What the reader's fingerprint hashes (its digest is the fingerprint): input options, the
    reader's code, and each file's identity (path, size, modification)."""
    import fsspec

    from crawl2model.pipeline import charset, compressed, sources, warc

    code = _source_hashes(sources, warc, compressed, charset)
    identity = []
    if inputs.sample is not None:  # generated from the seed: its parameters are its identity
        from crawl2model.pipeline import sample, sample_text

        code += _source_hashes(sample, sample_text)
        identity.append(["sample", seed])
    sample_dir = storage.join(run_dir, "sample")
    for file in files:
        if file.path.startswith(sample_dir):
            continue
        fs, path = fsspec.core.url_to_fs(file.path, **inputs.storage_options)
        info = fs.info(path)
        identity.append([file.kind, file.path, info.get("size"),
                         info.get("mtime") or info.get("ETag") or info.get("LastModified")])
    return {"inputs": inputs.model_dump(mode="json"), "code": code, "files": identity}


def kept_in_memory(nodes: list[StageNode]) -> list[StageNode]:
    """The nodes, each with `kept_in` set where it hands its kept documents to the next stage in
    memory: it asks for `materialize: final`, and its one reader is its one child, which reads
    nothing else, is not global (a global stage's phases read whole shards from disk) and follows
    a stage that removes documents (one that makes an artifact passes its shards on by name).
    A stage another one reads the documents of (an ablation's arm) keeps them on disk."""
    children: dict[str, list[StageNode]] = {n.name: [] for n in nodes}
    for node in nodes:
        for parent in node.after:
            children[parent].append(node)
    read_elsewhere = {name for n in nodes if n.cls is not None for name in n.cls.reads_documents_of(n.config)}

    def hands_on(node: StageNode) -> bool:
        kids = children[node.name]
        return (node.materialize == "final" and len(kids) == 1 and kids[0].after == (node.name,)
                and not kids[0].is_global and not node.makes_artifact and node.name not in read_elsewhere)

    result: list[StageNode] = []
    for node in nodes:
        kept_in, current = [], node
        while hands_on(current):
            current = children[current.name][0]
            kept_in.append(current.name)
        result.append(replace(node, kept_in=tuple(kept_in)))
    return result


def fingerprinted(nodes: list[StageNode], source_fp: str, inputs: dict[str, dict] | None = None) -> list[StageNode]:
    """The nodes with their fingerprints set (the reader's is `source_fp`). `inputs`, when given,
    receives per stage what its fingerprint hashed (`stage_inputs`) and what its code hash covers."""
    result: dict[str, StageNode] = {}
    for node in nodes:
        if node.is_source:
            result[node.name] = replace(node, fingerprint=source_fp)
            continue
        hashed = stage_inputs(node, [result[p].fingerprint for p in node.after])
        if inputs is not None:
            inputs[node.name] = {"inputs": hashed, "code_parts": code_parts(node.cls)}
        result[node.name] = replace(node, fingerprint=digest(hashed))
    return list(result.values())


def stage_inputs(node: StageNode, parent_fingerprints: list[str]) -> dict:
    """What a stage's fingerprint hashes. Kept beside it (`_fingerprint.json`), so that two runs
    whose fingerprints differ can be told why (`pipeline diff`)."""
    options = json.loads(json.dumps(node.config.model_dump(mode="json")).replace(node.run_dir, "<run>"))
    data = sorted(node.cls.data_files(node.config))
    hashed = {"type": stage_path(node.cls), "options": options, "code": node.cls.code_version(),
              "data": [[storage.relative(path, node.run_dir), storage.sha256_of(path)] for path in data],
              "after": parent_fingerprints}
    if not node.materialized:  # it writes other files: a run that wrote its kept shards is another run
        hashed["kept"] = "in memory"
    return hashed


def code_parts(cls: type[Stage]) -> dict:
    """What `Stage.code_version` hashes, by name: its source files (folder/file) and the versions of
    the packages it names; not hashed itself, only kept to say which part of a code change it was."""
    from importlib.metadata import PackageNotFoundError, version

    from crawl2model.pipeline.stage import local_sources

    packages = {}
    for package in cls.packages:
        try:
            packages[package] = version(package)
        except PackageNotFoundError:
            packages[package] = "?"
    return {"sources": {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                        for p in local_sources(cls.__module__)},
            "packages": packages}


def upstream(nodes: list[StageNode], node: StageNode) -> list[StageNode]:
    """The stages `node` reads from, directly or not, nearest first (breadth first)."""
    by_name = {n.name: n for n in nodes}
    found: list[StageNode] = []
    todo = list(node.after)
    while todo:
        name = todo.pop(0)
        if name in by_name and all(name != n.name for n in found):
            found.append(by_name[name])
            todo += by_name[name].after
    return [n for n in found if not n.is_source]


def descendants(nodes: list[StageNode], names: set[str]) -> set[str]:
    found = set(names)
    for node in nodes:  # topological order: one pass suffices
        if found.intersection(node.after):
            found.add(node.name)
    return found


def ancestors(nodes: list[StageNode], name: str) -> set[str]:
    by_name = {n.name: n for n in nodes}
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += by_name[current].after
    return found


def segments(nodes: list[StageNode], to_run: set[str]) -> list[list[StageNode]]:
    """Chains of stages that stream into each other in one Ray Data pipeline.

    A stage joins its parent's chain when it has one parent, that parent runs now, ends its
    chain, and has no other child; otherwise it starts a chain that reads its parents' shards.
    A global stage always starts a chain: its phases must finish before it judges a shard; so does
    the child of a stage that makes an artifact (its documents out are known only at its end).
    """
    children: dict[str, int] = {}
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        for parent in node.after:
            children[parent] = children.get(parent, 0) + 1
    chains: list[list[StageNode]] = []
    for node in nodes:
        if node.name not in to_run:
            continue
        joinable = (len(node.after) == 1 and not node.is_global and not by_name[node.after[0]].makes_artifact
                    and node.after[0] in to_run and children[node.after[0]] == 1
                    and chains and chains[-1][-1].name == node.after[0])
        if joinable:
            chains[-1].append(node)
        else:
            chains.append([node])
    return chains
