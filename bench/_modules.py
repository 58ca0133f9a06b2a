"""A Python file as a module, by its path: benchmarks reuse the tests' loaders and scorers and
each other's loops without making tests/ or bench/ a package."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def from_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
