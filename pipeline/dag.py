"""The run's DAG: nodes in topological order, their fingerprints, and the segments Ray streams.

A fingerprint hashes a stage's type, options, code version and its parents' fingerprints, so a
changed option re-runs that stage and everything after it, and nothing else.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import fsspec

from crawl2model.pipeline import storage
from crawl2model.pipeline.config import SOURCE, RunConfig, StageSpec
from crawl2model.pipeline.global_stage import GlobalStage
from crawl2model.pipeline.sources import InputFile
from crawl2model.pipeline.stage import stage_path


@dataclass(frozen=True)
class Node:
    name: str
    stage_type: str  # import path of the stage class; SOURCE for the reader
    options: dict
    after: tuple[str, ...]
    needs_setup: bool = False
    is_global: bool = False  # runs phases over the whole corpus before it judges any shard
    judges: bool = True  # False: makes an artifact; its children read its parent's documents


def build_nodes(specs: list[StageSpec]) -> list[Node]:
    """The reader, then the stages in the listed order (which `after:` may only point back into)."""
    nodes = [Node(SOURCE, SOURCE, {}, ())]
    for spec in specs:
        nodes.append(Node(spec.name, stage_path(spec.cls), spec.config.model_dump(mode="json"), spec.after,
                          spec.cls.needs_setup(), issubclass(spec.cls, GlobalStage), getattr(spec.cls, "judges", True)))
    return nodes


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _source_hashes(*modules) -> list[str]:
    return [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in modules]


def config_fingerprint(config: RunConfig) -> str:
    return _digest(config.model_dump(mode="json"))


def source_fingerprint(config: RunConfig, files: list[InputFile]) -> str:
    """Input options, the reader's code, and each file's identity (path, size, modification)."""
    from crawl2model.pipeline import charset, compressed, sources, warc

    code = _source_hashes(sources, warc, compressed, charset)
    inputs = config.input.model_dump(mode="json")
    identity = []
    if config.input.sample is not None:  # generated from the seed: its parameters are its identity
        from crawl2model.pipeline import sample, sample_text

        code += _source_hashes(sample, sample_text)
        identity.append(["sample", config.seed])
    sample_dir = str(Path(config.output_dir) / "sample")
    for file in files:
        if file.path.startswith(sample_dir):
            continue
        fs, path = fsspec.core.url_to_fs(file.path, **config.input.storage_options)
        info = fs.info(path)
        identity.append([file.kind, file.path, info.get("size"),
                         info.get("mtime") or info.get("ETag") or info.get("LastModified")])
    return _digest({"inputs": inputs, "code": code, "files": identity})


def fingerprints(nodes: list[Node], source_fp: str) -> dict[str, str]:
    from crawl2model.catalog import resolve_stage

    result = {SOURCE: source_fp}
    for node in nodes[1:]:
        cls = resolve_stage(node.stage_type)
        data = sorted(cls.data_files(cls.Config.model_validate(node.options)))
        result[node.name] = _digest({
            "type": node.stage_type, "options": node.options, "code": cls.code_version(),
            "data": [[path, _file_digest(path)] for path in data],
            "after": [result[p] for p in node.after],
        })
    return result


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with fsspec.open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def descendants(nodes: list[Node], names: set[str]) -> set[str]:
    found = set(names)
    for node in nodes:  # topological order: one pass suffices
        if found.intersection(node.after):
            found.add(node.name)
    return found


def ancestors(nodes: list[Node], name: str) -> set[str]:
    by_name = {n.name: n for n in nodes}
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += by_name[current].after
    return found


def segments(nodes: list[Node], to_run: set[str]) -> list[list[Node]]:
    """Chains of stages that stream into each other in one Ray Data pipeline.

    A stage joins its parent's chain when it has one parent, that parent runs now, ends its
    chain, and has no other child; otherwise it starts a chain that reads its parents' shards.
    A global stage always starts a chain: its phases must finish before it judges a shard; so does
    the child of a stage that makes an artifact instead of documents.
    """
    children: dict[str, int] = {}
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        for parent in node.after:
            children[parent] = children.get(parent, 0) + 1
    chains: list[list[Node]] = []
    for node in nodes:
        if node.name not in to_run:
            continue
        joinable = (len(node.after) == 1 and not node.is_global and by_name[node.after[0]].judges
                    and node.after[0] in to_run and children[node.after[0]] == 1
                    and chains and chains[-1][-1].name == node.after[0])
        if joinable:
            chains[-1].append(node)
        else:
            chains.append([node])
    return chains


def stage_dir(config: RunConfig, name: str) -> str:
    return storage.join(config.output_dir, "stages", name)
