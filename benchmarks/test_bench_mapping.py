"""Mapping throughput per kind and payload size, beside the two references.

Compare ratios within one run (`--benchmark-group-by=param:size`); absolute
figures drift on shared machines. `flowhook bench` prints the same figures
measured in interleaved turns.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowhook.bench import MAPPINGS, STRIPE_SOURCE, MiniRacerFloor, floor_function, mapping_function, sample_request

SIZES = ["1k", "50k"]
EXPECTED_USER = ["user-12345"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", [kind for kind in MAPPINGS if kind != "passthrough"])
def test_mapping(benchmark: Any, kind: str, size: str) -> None:
    benchmark.group = f"mapping {size}"
    run, request = mapping_function(kind), sample_request(kind, size)
    result = benchmark(run, request)
    assert result.ok and result.output["targetUserIds"] == EXPECTED_USER


def test_passthrough(benchmark: Any) -> None:
    benchmark.group = "mapping 1k"
    result = benchmark(mapping_function("passthrough"), sample_request("passthrough"))
    assert result.ok and result.output["targetUserIds"] == EXPECTED_USER


@pytest.mark.parametrize("size", SIZES)
def test_floor_bare_quickjs(benchmark: Any, size: str) -> None:
    benchmark.group = f"mapping {size}"
    output = benchmark(floor_function(STRIPE_SOURCE), sample_request("javascript", size))
    assert output["targetUserIds"] == EXPECTED_USER


@pytest.mark.parametrize("size", SIZES)
def test_reference_mini_racer(benchmark: Any, size: str) -> None:
    benchmark.group = f"mapping {size}"
    output = benchmark(MiniRacerFloor(STRIPE_SOURCE), sample_request("javascript", size))
    assert output["targetUserIds"] == EXPECTED_USER
