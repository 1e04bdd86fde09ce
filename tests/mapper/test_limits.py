"""Limits: the per-invocation budget, its defaults (SPEC §2) and its wire form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mapper import Limits, compile_mapping

MiB = 1024 * 1024


def test_defaults_are_the_spec_contract() -> None:
    assert Limits().to_dict() == {
        "time_ms": 1000,
        "memory_bytes": 32 * MiB,
        "stack_bytes": 1 * MiB,
        "max_output_bytes": 1 * MiB,
        "max_depth": 64,
        "max_log_lines": 100,
    }


def test_limits_are_frozen_and_hashable() -> None:
    limits = Limits(time_ms=200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.time_ms = 5  # type: ignore[misc]
    assert hash(limits) == hash(Limits(time_ms=200))
    assert limits != Limits()


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(Limits)])
@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True, None])
def test_every_limit_must_be_a_positive_integer(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_a_result_may_nest_no_deeper_than_its_store_writes() -> None:
    """orjson writes 255 levels at most, and an answer too deep for the host's decoders is taken for too
    deep: a higher `max_depth` would let through results that cannot be stored or even read."""
    assert Limits(max_depth=200).max_depth == 200
    with pytest.raises(ValueError, match="max_depth must be at most 200"):
        Limits(max_depth=201)


def test_round_trip_through_json() -> None:
    limits = Limits(
        time_ms=250, memory_bytes=8 * MiB, stack_bytes=256 * 1024, max_output_bytes=4096, max_depth=10, max_log_lines=5
    )
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits


def test_from_dict_fills_the_rest_with_defaults() -> None:
    assert Limits.from_dict({"time_ms": 50}) == Limits(time_ms=50)
    assert Limits.from_dict({}) == Limits()


def test_from_dict_rejects_unknown_and_invalid_limits() -> None:
    with pytest.raises(ValueError, match="cpu_ms"):
        Limits.from_dict({"time_ms": 50, "cpu_ms": 5})
    with pytest.raises(ValueError, match="max_depth"):
        Limits.from_dict({"max_depth": 0})


def test_compile_mapping_keeps_the_limits_it_was_given() -> None:
    spec = {"kind": "javascript", "source": "function map(request) { return null; }"}
    assert compile_mapping(spec).limits == Limits()
    assert compile_mapping(spec, limits=Limits(time_ms=300)).limits == Limits(time_ms=300)
