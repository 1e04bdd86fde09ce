"""Locate the JSON Schemas and sandbox JavaScript shipped beside the code.

A source checkout keeps them at the repository top level (`schemas/`,
`sandbox/`); a wheel carries them inside the `mapper` package.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for base in (_PACKAGE_DIR, _PACKAGE_DIR.parent.parent):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"flowhook resource directory {name!r} not found near {_PACKAGE_DIR}")


def schema_dir() -> Path:
    return _locate("schemas")


def sandbox_dir() -> Path:
    return _locate("sandbox")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema `schemas/<name>.schema.json`."""
    data: dict[str, Any] = orjson.loads((schema_dir() / f"{name}.schema.json").read_bytes())
    return data


@functools.cache
def prelude_source() -> str:
    return (sandbox_dir() / "prelude.js").read_text(encoding="utf-8")
