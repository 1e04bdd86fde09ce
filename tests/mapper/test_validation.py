"""Output validation against schemas/trigger-request.schema.json, and the schema files themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mapper import MappingResult, compile_mapping, make_request
from mapper.validation import MAX_MESSAGE_CHARS

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VALID = {
    "targetUserIds": ["u1"],
    "flowInvocationId": "inv-1",
    "variables": {"a": 1},
    "notificationDetail": {"title": "Hi"},
    "metadata": {"source": "test"},
}


def validate(output: Any) -> MappingResult:
    """Passthrough makes the body the output, so it reaches validation untouched."""
    raw = json.dumps(output).encode()
    return compile_mapping({"kind": "passthrough"}).run(make_request("POST", "/", {}, "", raw, "application/json"))


def paths(result: MappingResult) -> list[str]:
    return [error["path"] for error in result.validation_errors]


@pytest.mark.parametrize(
    "output",
    [
        VALID,
        {"targetUserIds": ["u1"]},
        {"targetUserIds": ["u"] * 10_000},
        {"targetUserIds": ["u1"], "flowInvocationId": "x" * 128},
        {"targetUserIds": ["u1"], "variables": {}, "notificationDetail": {}, "metadata": {}},
    ],
    ids=["all-fields", "minimal", "10000-ids", "128-char-id", "empty-objects"],
)
def test_valid_outputs_pass(output: dict[str, Any]) -> None:
    result = validate(output)
    assert result.ok, result.validation_errors
    assert result.output == output
    assert result.validation_errors == []


def test_every_violation_is_reported_with_its_path() -> None:
    result = validate(
        {
            "targetUserIds": ["", 5, "ok"],
            "flowInvocationId": 7,
            "variables": [],
            "notificationDetail": "text",
            "metadata": None,
            "extra": 1,
        }
    )
    assert not result.ok and result.error is None
    assert sorted(paths(result)) == sorted(
        [
            "$",
            "$.targetUserIds[0]",
            "$.targetUserIds[1]",
            "$.flowInvocationId",
            "$.variables",
            "$.notificationDetail",
            "$.metadata",
        ]
    )
    assert all(error["message"] for error in result.validation_errors)


@pytest.mark.parametrize(
    ("output", "path", "says"),
    [
        ({}, "$", "targetUserIds"),
        ({"variables": {"a": 1}}, "$", "targetUserIds"),
        ({"targetUserIds": []}, "$.targetUserIds", ""),
        ({"targetUserIds": "u1"}, "$.targetUserIds", "array"),
        ({"targetUserIds": ["u1", None]}, "$.targetUserIds[1]", "string"),
        ({"targetUserIds": ["u1"], "flowInvocationId": ""}, "$.flowInvocationId", ""),
        ({"targetUserIds": ["u1"], "flowInvocationId": "x" * 129}, "$.flowInvocationId", "128"),
        ({"targetUserIds": ["u"] * 10_001}, "$.targetUserIds", ""),
        ({"targetUserIds": ["u1"], "targetUserId": "u2"}, "$", "targetUserId"),
        ({"targetUserIds": ["u1"], "variables": "a=1"}, "$.variables", "object"),
    ],
    ids=[
        "empty",
        "no-ids",
        "empty-ids",
        "ids-not-array",
        "null-id",
        "empty-invocation-id",
        "invocation-id-129",
        "10001-ids",
        "extra-property",
        "variables-not-object",
    ],
)
def test_single_violation(output: dict[str, Any], path: str, says: str) -> None:
    result = validate(output)
    assert not result.ok and not result.skipped
    assert paths(result) == [path]
    assert says in result.validation_errors[0]["message"]


def test_long_messages_are_shortened() -> None:
    result = validate({"targetUserIds": ["u1"], "flowInvocationId": "x" * 5000})
    (error,) = result.validation_errors
    assert error["path"] == "$.flowInvocationId"
    assert len(error["message"]) <= MAX_MESSAGE_CHARS


def test_invalid_output_is_still_returned_for_the_preview() -> None:
    output = {"targetUserIds": ["u1"], "oops": True}
    assert validate(output).output == output


@pytest.mark.parametrize("name", sorted(path.name for path in SCHEMAS.glob("*.schema.json")))
def test_schema_files_are_valid_2020_12_schemas(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schema_file_is_the_contract() -> None:
    """jsonschema (the reference implementation) agrees with what the runtime reports."""
    schema = json.loads((SCHEMAS / "trigger-request.schema.json").read_text())
    reference = jsonschema.Draft202012Validator(schema)
    samples = [VALID, {}, {"targetUserIds": [1]}, {"targetUserIds": ["u1"], "x": 1}, {"targetUserIds": ["u"] * 10_001}]
    for sample in samples:
        assert reference.is_valid(sample) == validate(sample).ok, sample


def test_the_mapping_schema_accepts_every_kind() -> None:
    schema = json.loads((SCHEMAS / "mapping.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for spec in (
        {"kind": "javascript", "source": "function map(r) { return null; }"},
        {"kind": "jmespath", "fields": {"targetUserIds": "body.id", "variables.first-name": "body.name"}},
        {"kind": "jmespath", "expression": "body"},
        {"kind": "passthrough"},
    ):
        assert validator.is_valid(spec), spec
        compile_mapping(spec)
