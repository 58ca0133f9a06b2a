"""crawl.yaml: the validated schema of a run, and errors that name the key and give a hint.

Every mistake is found here, before Ray starts: unknown keys, wrong types, unknown stage types,
stage options, `after:` references, missing input files, columns a stage needs but will not get.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from typing import Callable

from crawl2model.pipeline.plan import SOURCE, Materialize, StageNode, upstream
from crawl2model.pipeline.sources import InputConfig, parquet_text_problem, source_columns
from crawl2model.pipeline.stage import Stage
from crawl2model.pipeline.storage import exists, expand_inputs



class ConfigError(Exception):
    """All problems of one config, each as `key.path: message`."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        header = f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__("\n".join([header, *(f"  {p}" for p in problems)]))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RayConfig(Strict):
    address: str | None = None  # null: embedded local Ray (RAY_ADDRESS and --address override)
    num_cpus: int | None = Field(default=None, ge=1)  # local Ray only; default all cores
    runtime_env: dict[str, Any] = {}  # for a cluster: how workers get your code (working_dir, py_modules, pip)


class StageEntry(BaseModel):
    """One item of `stages:`. Options other than these are the stage's own, checked by its Config."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # its folder under stages/: no `/`, never `.` or `..`
    type: str
    after: list[str] | None = None  # default: the stage listed before (or the input reader)
    materialize: Materialize | None = None  # default: the run's `materialize`

    @field_validator("name")
    @classmethod
    def _a_folder_name(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError(f"'{value}' cannot name a stage: it is the name of a folder link")
        return value

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RunConfig(Strict):
    name: str
    output_dir: str
    seed: int = 0
    ray: RayConfig = RayConfig()
    input: InputConfig
    # all: every stage writes its kept shards; final: a stage whose only reader is the next of its
    # chain hands its kept documents on in memory (plan.kept_in_memory); `pipeline inspect` rebuilds them
    materialize: Materialize = "all"
    stages: list[StageEntry] = []

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        """Workers (on other nodes, in other directories) must write where the driver reads."""
        return value if "://" in value else os.path.abspath(value)


def load_config(path: str | Path, resolve: Callable[[str], type[Stage]]) -> tuple[RunConfig, list[StageNode]]:
    """Read, parse and check a crawl.yaml. Raises ConfigError listing every problem found."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(source, ["config file not found"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}not valid YAML ({getattr(error, 'problem', error)})"]) from None
    return parse_config(raw, source, resolve)


def parse_config(raw: Any, source: str, resolve: Callable[[str], type[Stage]]) -> tuple[RunConfig, list[StageNode]]:
    """Check everything in one pass and report every problem at once: the top-level keys, each
    stage's entry and options, the DAG, what each stage takes from those before it, the input
    files, the files stages read (models, word lists, data), and the columns stages need. A check
    that depends on a part with a problem is skipped, so one mistake is reported once."""
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the top level must be a mapping of keys (name, output_dir, input, stages, ...)"])
    problems: list[str] = []
    config = _top_level(raw, problems)
    input_problems = _check_inputs(config) if config is not None else []
    problems += input_problems
    entries = _stage_entries(raw.get("stages"), problems)
    base = config or _stand_in(raw)
    base = base.model_copy(update={"stages": [e for e in entries if e is not None]})
    nodes = _resolve_stages(base, entries, problems, resolve)
    _check_dag(entries, nodes, problems)
    bound = {node.name: node for node in _bind(base, nodes, problems)}
    _check_data_files([bound.get(node.name, node) for node in nodes], problems)  # an unbound one: its own options
    nodes = list(bound.values())
    if config is not None and not input_problems:
        _check_columns(config, nodes, problems)
    if problems:
        raise ConfigError(source, problems)
    return base, nodes


def _top_level(raw: dict, problems: list[str]) -> RunConfig | None:
    """Every key but `stages`, validated; None (its problems added) when any is wrong."""
    try:
        return RunConfig.model_validate({**raw, "stages": []})
    except ValidationError as error:
        problems += describe_errors(error, RunConfig)
        return None


def _stage_entries(raw: Any, problems: list[str]) -> list[StageEntry | None]:
    """Each item of `stages:` as an entry, or None where it has a problem (added), by position."""
    if raw is None or raw == []:
        problems.append("stages: no stages; list at least one (`pipeline stages` shows the types and their options)")
        return []
    if not isinstance(raw, list):
        problems.append(f"stages: must be a list of stages, each with a name and a type (got {type(raw).__name__})")
        return []
    entries: list[StageEntry | None] = []
    for i, item in enumerate(raw):
        try:
            entries.append(StageEntry.model_validate(item))
        except ValidationError as error:
            problems += [f"stages[{i}]{_under(p)}" for p in describe_errors(error, StageEntry)]
            entries.append(None)
    return entries


def _stand_in(raw: dict) -> RunConfig:
    """A run config to check the stages against when the top level has problems (they are
    reported already): the run's seed where it is an integer, else 0."""
    seed = raw.get("seed")
    return RunConfig.model_construct(name="", output_dir=os.path.abspath("."), seed=seed if isinstance(seed, int) else 0,
                                     ray=RayConfig(), input=InputConfig(), stages=[])


def source_node(config: RunConfig) -> StageNode:
    """The reader of the inputs: the first node of every run."""
    return StageNode(SOURCE, None, config.input, run_dir=config.output_dir, materialize=config.materialize)


def _resolve_stages(config: RunConfig, entries: list[StageEntry | None], problems: list[str],
                    resolve) -> list[StageNode]:
    """A node per stage whose type is known and whose options are valid."""
    nodes, previous = [], SOURCE
    for i, entry in enumerate(entries):
        if entry is None:  # a stage with a problem: the next one's default `after` names it by position
            previous = _placeholder(i)
            continue
        where, after = f"stages[{i}]", tuple(entry.after if entry.after is not None else [previous])
        previous = entry.name
        try:
            cls = resolve(entry.type)
        except LookupError as error:
            problems.append(f"{where}.type: {error}")
            continue
        raw = entry.options()
        if "seed" in cls.Config.model_fields and raw.get("seed") is None:
            raw["seed"] = config.seed  # a stage's unset seed is the run's, and part of its fingerprint
        try:
            options = cls.Config.model_validate(raw)
        except ValidationError as error:
            problems += [f"{where}{_under(p)}" for p in describe_errors(error, cls.Config)]
            continue
        nodes.append(StageNode(entry.name, cls, options, after, index=i, run_dir=config.output_dir,
                               materialize=entry.materialize or config.materialize))
    return nodes


def _placeholder(index: int) -> str:
    """The name of a stage entry with a problem: never a valid name (StageEntry.name), so never bound."""
    return f"stages[{index}]"


def _check_dag(entries: list[StageEntry | None], nodes: list[StageNode], problems: list[str]) -> None:
    for spec in nodes:
        before = {SOURCE, *(entry.name if entry else _placeholder(k) for k, entry in enumerate(entries[:spec.index]))}
        if spec.name in before:
            problems.append(f"stages[{spec.index}].name: '{spec.name}' is used twice (or is the reserved name '{SOURCE}')")
        for parent in spec.after:
            if parent not in before:
                close = difflib.get_close_matches(parent, sorted(before), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(f"stages[{spec.index}].after: '{parent}' is not a stage listed before this one{hint}")


def _bind(config: RunConfig, nodes: list[StageNode], problems: list[str]) -> list[StageNode]:
    """Let each stage fill in what it takes from the stages it reads from (Stage.bind). A stage
    whose ancestors are not all well is left out: what it would take is unknown."""
    bound = {SOURCE: source_node(config)}
    for node in nodes:
        if not all(parent in bound for parent in node.after) or node.name in bound:
            continue
        try:
            node = replace(node, config=node.cls.bind(node.config, upstream(list(bound.values()), node)))
        except ValueError as error:
            problems.append(f"stages[{node.index}] ({node.name}): {error}")
            continue
        bound[node.name] = node
    return [node for name, node in bound.items() if name != SOURCE]


def _check_data_files(nodes: list[StageNode], problems: list[str]) -> None:
    """The files each stage reads from outside the run (models, tokenizers, data, word lists) exist."""
    for node in nodes:
        try:
            paths = node.cls.data_files(node.config)
        except Exception as error:  # noqa: BLE001 - e.g. the default model's package is missing
            problems.append(f"stages[{node.index}] ({node.name}): {error}")
            continue
        for path in paths:
            try:
                found = exists(path)
            except Exception as error:  # noqa: BLE001 - a bad URL scheme, missing credentials
                problems.append(f"stages[{node.index}].{_key_holding(node.config, path)}: cannot reach '{path}': {error}")
                continue
            if not found:
                where = "" if "://" in path or os.path.isabs(path) else f" (relative paths start at the current directory, {os.getcwd()})"
                problems.append(f"stages[{node.index}].{_key_holding(node.config, path)}: no file '{path}'{where}")


def _key_holding(config: BaseModel, path: str) -> str:
    """The option of `config` whose value names `path` (as it is, in a list, or inside), for the message."""
    for key, value in config:
        if path == value or path in json.dumps(value if not isinstance(value, BaseModel) else value.model_dump(),
                                                default=str):
            return key
    return "(file)"


def _check_inputs(config: RunConfig) -> list[str]:
    inputs = config.input
    if not (inputs.warc or inputs.jsonl or inputs.parquet or inputs.sample):
        return ["input: no input given; name at least one of warc, jsonl, parquet or sample"]
    problems = []
    for kind in ("warc", "jsonl", "parquet"):
        for i, pattern in enumerate(getattr(inputs, kind)):
            try:
                found = expand_inputs([pattern], inputs.storage_options)
            except Exception as error:  # a bad URL scheme, missing credentials, ...
                problems.append(f"input.{kind}[{i}]: cannot list '{pattern}': {error}")
                continue
            if not found:
                problems.append(f"input.{kind}[{i}]: no file matches '{pattern}' "
                                f"(relative paths start at the current directory, {os.getcwd()})")
            elif kind == "parquet" and (problem := parquet_text_problem(found[0], inputs)):
                problems.append(f"input.{kind}[{i}]: {problem}")
    return problems


def _check_columns(config: RunConfig, nodes: list[StageNode], problems: list[str]) -> None:
    """Follow the columns each stage adds and removes; report a stage whose input lacks a column."""
    available = {SOURCE: source_columns(config.input)}
    for spec in nodes:
        columns = set.intersection(*(available[p] for p in spec.after))
        missing = [c for c in spec.cls.requires if c not in columns]
        if missing:
            problems.append(f"stages[{spec.index}] ({spec.name}): needs column(s) {', '.join(missing)} that its input "
                            f"({', '.join(spec.after)}) does not have; it has: {', '.join(sorted(columns))}")
        available[spec.name] = (columns - set(spec.cls.consumes)) | set(spec.cls.provides)


def describe_errors(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """Pydantic errors as `key.path: message (hint)` lines."""
    lines = []
    for item in error.errors():
        path = _key_path(item["loc"])
        if item["type"] == "extra_forbidden":
            known = _known_keys(model, item["loc"][:-1])
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            lines.append(f"{path}: unknown key; {hint}known keys: {', '.join(known)}")
        elif item["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        elif item["type"] == "value_error":  # our own validators' messages say what was wrong
            lines.append(f"{path}: {item['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{path}: {item['msg']} (got {item.get('input')!r})")
    return lines


def _under(problem: str) -> str:
    """A problem of a nested model's, placed under its key: `.favor: ...`, or `: ...` for the whole."""
    return problem.removeprefix("(top level)") if problem.startswith("(top level)") else f".{problem}"


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model found by walking `loc` (skipping list indexes)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return []
        model = inner
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None
