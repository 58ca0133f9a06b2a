"""Stage discovery: a stage type named in crawl.yaml (`extract`, or `mypkg.module:MyStage`) to
its class, and the run's config loaded with it. The kernel validates configs through the
`resolve` callable given here, so it never imports a concrete stage itself."""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from pathlib import Path

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
