"""Stage discovery: a stage type named in crawl.yaml (`extract`, or `mypkg.module:MyStage`) to
its class, and the run's config loaded with it. The kernel validates configs through the
`resolve` callable given here, so it never imports a concrete stage itself. `describe_stage`
says what a stage does and which options it takes, for `pipeline stages`."""
from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from crawl2model.pipeline.config import load_config as _load_config, parse_config as _parse_config
from crawl2model.pipeline.stage import Stage


def builtin_stage_types() -> list[str]:
    """Type names of the stages shipped in `stages/`: one module per stage, named as its type."""
    import crawl2model.stages

    return sorted(m.name for m in pkgutil.iter_modules(crawl2model.stages.__path__) if not m.name.startswith("_"))


def resolve_stage(type_name: str) -> type[Stage]:
    """Find a stage class by built-in type name (`extract`) or import path (`pkg.module:Class`).

    Raises LookupError with a hint that says what was looked for and what exists.
    """
    if ":" in type_name:
        module_name, _, attr = type_name.partition(":")
        if not _defines_class(module_name, attr):  # checked in its source: a module runs only once it may be a stage's
            raise LookupError(f"'{attr}' in module '{module_name}' is not a crawl2model.pipeline.stage.Stage subclass")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise LookupError(f"cannot import module '{module_name}' ({error}); is it installed or on PYTHONPATH?") from None
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise LookupError(f"'{attr}' in module '{module_name}' is not a crawl2model.pipeline.stage.Stage subclass")
        if not _is_concrete(cls):
            raise LookupError(f"'{type_name}' is a base class: a stage implements process() (or, a global stage, phases())")
        return cls

    known = builtin_stage_types()
    if type_name not in known:
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise LookupError(f"unknown stage type '{type_name}'; {hint}known types: {', '.join(known)}; "
                          "or give an import path such as 'mypkg.module:MyStage'")
    module = importlib.import_module(f"crawl2model.stages.{type_name}")
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, Stage) and obj.type_name == type_name]
    if len(found) != 1:
        raise LookupError(f"module stages.{type_name} must define exactly one Stage with type_name '{type_name}'")
    return found[0]


def _defines_class(module_name: str, name: str) -> bool:
    """Whether the source of `module_name` defines a class `name` (or imports that name), read
    without running the module. Raises LookupError when the module cannot be found."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as error:
        raise LookupError(f"cannot import module '{module_name}' ({error}); is it installed or on PYTHONPATH?") from None
    if spec is None or not spec.origin:
        raise LookupError(f"cannot import module '{module_name}' (not found); is it installed or on PYTHONPATH?")
    if not spec.origin.endswith(".py"):
        return True  # compiled: nothing to read, the class check after import decides
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return any(isinstance(node, ast.ClassDef) and node.name == name for node in tree.body) or any(
        isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names)
        for node in tree.body)


def _is_concrete(cls: type[Stage]) -> bool:
    from crawl2model.pipeline.global_stage import GlobalStage

    if issubclass(cls, GlobalStage):
        return cls.phases is not GlobalStage.phases
    return cls.process is not Stage.process


def load_config(path: str | Path):
    """A crawl.yaml read and checked, its stages resolved: (RunConfig, [StageNode, ...])."""
    return _load_config(path, resolve_stage)


def parse_config(raw, source: str = "config"):
    return _parse_config(raw, source, resolve_stage)


# --- what a stage does and which options it takes (`pipeline stages`) ------------------------------

SUMMARY_CHARS = 110  # a one-line description longer than this is cut at a word
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")  # "e.g. reference" and "al. 2021" go on


@dataclass(frozen=True)
class OptionInfo:
    name: str  # as written in crawl.yaml; a nested option as `model.dim`
    type: str  # `int | None`, `list[str]`, `"filter" | "annotate"`
    default: str | None  # as YAML (JSON) would write it; None when the option is required
    limits: str  # `>= 0, <= 1`, or ""
    description: str  # the field's description, else the comment beside it in the source, or ""


@dataclass(frozen=True)
class StageInfo:
    type_name: str
    qualified_name: str  # module.Class
    summary: str  # one line
    doc: str  # the docstring in full
    options: list[OptionInfo]


def describe_stage(type_name: str) -> StageInfo:
    """What `pipeline stages TYPE` shows. Raises LookupError as `resolve_stage` does."""
    cls = resolve_stage(type_name)
    doc = stage_doc(cls, builtin=":" not in type_name)
    return StageInfo(type_name, f"{cls.__module__}.{cls.__qualname__}", summary(doc, type_name), doc,
                     config_options(cls.Config))


def stage_doc(cls: type[Stage], builtin: bool) -> str:
    """The docstring that documents the stage: a built-in's module (one module per stage, where its
    documentation lives), else the class's own; each falls back on the other."""
    module_doc = inspect.getdoc(sys.modules.get(cls.__module__)) or ""
    class_doc = cls.__dict__.get("__doc__") and inspect.cleandoc(cls.__doc__) or ""
    first, second = (module_doc, class_doc) if builtin else (class_doc, module_doc)
    return first or second


def summary(doc: str, type_name: str) -> str:
    """The first sentence of the docstring's first paragraph, on one line, without a leading
    "`type_name`: " that only repeats the name."""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    paragraph = re.sub(rf"^`?{re.escape(type_name)}`?:\s*", "", paragraph)
    sentence = _SENTENCE_END.split(paragraph, maxsplit=1)[0]
    return textwrap.shorten(sentence, SUMMARY_CHARS, placeholder=" …") if sentence else ""


def config_options(config: type[BaseModel], prefix: str = "") -> list[OptionInfo]:
    """Every option of a stage's Config, in declaration order; a nested model's options are listed
    one by one (`model.dim`), since that is how they are set. Fields marked `exclude` are internal."""
    comments = option_comments(config)
    options = []
    for name, field in config.model_fields.items():
        if field.exclude or name.startswith("_"):
            continue
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            options += config_options(field.annotation, f"{prefix}{name}.")
            continue
        options.append(OptionInfo(f"{prefix}{name}", type_text(field.annotation), default_text(field),
                                  limits_text(field.metadata), field.description or comments.get(name, "")))
    return options


def default_text(field) -> str | None:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return None
    else:
        value = field.default
    return json.dumps(value, ensure_ascii=False, default=str)  # JSON is YAML: null, true, "en", [1, 2]


def type_text(annotation) -> str:
    """An annotation as a reader writes it: `int | None`, `list[str]`, `"max" | "min"`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is typing.Literal:  # the values as the defaults are shown: JSON, which YAML reads
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_text(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def limits_text(metadata: list) -> str:
    """`ge=0, le=1` constraints as `>= 0, <= 1`."""
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return ", ".join(f"{symbol} {getattr(item, key)}" for item in metadata
                     for key, symbol in symbols.items() if getattr(item, key, None) is not None)


def option_comments(config: type[BaseModel]) -> dict[str, str]:
    """Option name -> the comment written beside it or on the lines just above it, read from the
    source of the config class and its bases (the options' documentation is there, not in
    pydantic descriptions); a subclass's comment wins."""
    comments: dict[str, str] = {}
    for klass in reversed(config.__mro__):
        if issubclass(klass, BaseModel) and klass is not BaseModel:
            comments.update(_class_comments(klass))
    return comments


def _class_comments(klass: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
        body = ast.parse(source).body[0].body
    except (OSError, TypeError, SyntaxError, IndexError, AttributeError):  # no source (compiled, interactive)
        return {}
    lines = source.splitlines()
    by_line = {token.start[0]: token.string.lstrip("#").strip()
               for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    found = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, line = [], node.lineno - 1
            while line in by_line and lines[line - 1].lstrip().startswith("#"):  # a comment block right above
                above.insert(0, by_line[line])
                line -= 1
            beside = [by_line[n] for n in range(node.lineno, node.end_lineno + 1) if n in by_line]
            if above or beside:
                found[node.target.id] = " ".join(above + beside)
    return found
