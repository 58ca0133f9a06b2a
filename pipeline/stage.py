"""The one abstraction every curation stage implements, and how stages are found by name.

A stage is a pure function over Arrow batches plus a declared config and resources. It knows
nothing of Ray, files or the DAG: a test builds one, feeds it a `pa.Table` and reads one back.
The runner alone turns stages into Ray Data operators and writes what they return.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

DROP_REASON = "drop_reason"  # null keeps the row; a string names the rule that removed it
DROP_DETAIL = "drop_detail"  # optional: what exactly went wrong (an error message, a size)
DUPLICATE_OF = "duplicate_of"  # dedup stages: the id of the document kept in a removed one's place
REMOVAL_COLUMNS = (DROP_REASON, DROP_DETAIL, DUPLICATE_OF)  # kept only on removed rows


class StageConfig(BaseModel):
    """Options of one stage. Subclasses add fields; unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Resources:
    """What one worker of the stage needs; the runner turns it into Ray resource requests."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0


class Stage:
    """Base class: subclass it, set the class attributes, implement `process`.

    `process` returns the batch with any new columns and, for filters, a `drop_reason` column
    (null = keep). It must return one row per input row so the runner can split kept from removed.
    Stages that override `setup` (to load a model once) run in a Ray actor pool; others run as tasks.
    """

    type_name: ClassVar[str] = ""
    Config: ClassVar[type[StageConfig]] = StageConfig
    resources: ClassVar[Resources] = Resources()
    requires: ClassVar[tuple[str, ...]] = ("text",)  # columns the input must have
    provides: ClassVar[tuple[str, ...]] = ()  # columns the stage adds
    consumes: ClassVar[tuple[str, ...]] = ()  # columns the stage takes away (e.g. html)
    packages: ClassVar[tuple[str, ...]] = ()  # libraries whose version changes the output
    batch_size: ClassVar[int] = 256

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.Config()
        self.counters: Counter[str] = Counter()  # extra per-stage counts, summed into stats.json
        self.histograms: dict[str, dict[str, list]] = {}  # measured values, binned; summed into stats.json

    def observe(self, metric: str, values, edges: list[float]) -> None:
        """Count `values` into the bins of `edges` (a value v lands in the last bin whose edge <= v),
        so stats.json shows how close a corpus sits to each threshold. Fixed edges make the
        histograms of all workers add up."""
        import numpy as np

        values = np.asarray(values, dtype=float)
        values = values[~np.isnan(values)]
        bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)
        counts = np.bincount(bins, minlength=len(edges))
        entry = self.histograms.setdefault(metric, {"edges": list(edges), "counts": [0] * len(edges)})
        entry["counts"] = [a + int(b) for a, b in zip(entry["counts"], counts)]

    def setup(self) -> None:
        """Load what every batch needs (models, word lists). Called once per worker, on first use."""

    def process(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def ready(self) -> Stage:
        """The stage, set up (once)."""
        if not self.__dict__.get("_set_up"):
            self.setup()
            self._set_up = True
        return self

    def __call__(self, batch: pa.Table) -> pa.Table:
        """`process` after `setup`, which runs once, on first use: how the runner (and a test) applies a stage."""
        return self.ready().process(batch)

    @classmethod
    def resources_for(cls, config: StageConfig) -> Resources:
        """What one worker asks Ray for; a stage whose needs depend on its options overrides it."""
        return cls.resources

    @classmethod
    def data_files(cls, config: StageConfig) -> list[str]:
        """Files the stage reads besides its input (word lists, models): a change to their contents
        re-runs the stage, as a change to its options does."""
        return []

    @classmethod
    def reads_documents_of(cls, config: StageConfig) -> list[str]:
        """Stages besides its parents whose kept documents it reads (an ablation's arms): they keep
        their shards on disk under `materialize: final`."""
        return []

    @classmethod
    def bind(cls, config: StageConfig, upstream: list) -> StageConfig:
        """The config with what it takes from earlier stages filled in: the path of the tokenizer,
        token shards or model an upstream stage makes (`node.artifact_dir`). `upstream` lists the
        stages this one reads from, directly or not, nearest first, as `pipeline.plan.StageNode`s
        (the plan is built on top of this module, so it is not imported here). Raise ValueError to explain
        what is missing; called once, when the run's config is loaded."""
        return config

    @classmethod
    def needs_setup(cls) -> bool:
        return cls.setup is not Stage.setup

    @classmethod
    def code_version(cls) -> str:
        """Hash of the module that defines the stage, the modules of its own package (and of
        `classifiers`, `model` and `train`) that it imports, directly or through each other, and the versions of the
        packages it names: a change to code it runs, or a library upgrade, invalidates its outputs."""
        from importlib.metadata import PackageNotFoundError, version

        digest = hashlib.sha256()
        for path in local_sources(cls.__module__):
            digest.update(path.read_bytes())
        for package in cls.packages:
            try:
                digest.update(f"{package}=={version(package)}".encode())
            except PackageNotFoundError:
                digest.update(f"{package}==?".encode())
        return digest.hexdigest()[:16]


# code there shapes a stage's output; the kernel (crawl2model.pipeline) only runs it
_OUTPUT_PACKAGES = tuple(f"crawl2model.{name}" for name in ("stages", "classifiers", "model", "train"))


def local_sources(module_name: str) -> list[Path]:
    """The source files of `module_name` and of the modules it imports from `_OUTPUT_PACKAGES`
    or (a user's stage) from its own top-level package, transitively, sorted."""
    import ast
    import importlib.util

    top = module_name.split(".")[0]

    def followed(name: str) -> bool:
        return name.startswith(tuple(f"{p}." for p in _OUTPUT_PACKAGES)) or (
            top != "crawl2model" and name.split(".")[0] == top)

    found: dict[str, Path] = {}
    todo = [module_name]
    while todo:
        name = todo.pop()
        try:
            spec = importlib.util.find_spec(name) if name not in found else None
        except (ImportError, ValueError):  # `from module import name`: the name is no module
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        found[name] = Path(spec.origin)
        for node in ast.walk(ast.parse(found[name].read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names if followed(alias.name)]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if followed(node.module + "."):  # `from pkg import module` names modules too
                    todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return sorted(found.values())


def stage_path(cls: type[Stage]) -> str:
    """The import path a worker uses to find the class again."""
    return f"{cls.__module__}:{cls.__qualname__}"
