"""Output validation against schemas/trigger-request.schema.json, and the schema files themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mapper import MappingResult, MappingSpecError, compile_mapping, make_request
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
        ({"targetUserIds": 42}, "$.targetUserIds", "must be an array, not a number"),
        ({"targetUserIds": ""}, "$.targetUserIds[0]", "has 0 characters, fewer than the 1 required"),
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
        "ids-a-number",
        "ids-an-empty-string",
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


LONG = "x" * 100_000
IDS = [f"user-{index}" for index in range(10_001)]


@pytest.mark.parametrize(
    ("output", "path", "message"),
    [
        ({"targetUserIds": IDS}, "$.targetUserIds", "has 10001 items, more than the 10000 allowed"),
        ({"targetUserIds": [], "variables": {"x": LONG}}, "$.targetUserIds", "has 0 items, fewer than the 1 required"),
        ({"targetUserIds": ["u1"], "variables": [LONG]}, "$.variables", "must be an object, not an array"),
        ({"targetUserIds": [LONG, None]}, "$.targetUserIds[1]", "must be a string, not null"),
        ({"targetUserIds": [LONG + "\u0000"]}, "$.targetUserIds[0]", "does not match the pattern ^[^\\u0000]*$"),
        (
            {"targetUserIds": ["u1"], "flowInvocationId": LONG},
            "$.flowInvocationId",
            "has 100000 characters, more than the 128 allowed",
        ),
        (
            {"targetUserIds": ["u1"], LONG: 1},
            "$",
            f"unknown property '{'x' * 39}…'; allowed: {', '.join(sorted(VALID))}",
        ),
        (
            {f"extra{index}": LONG for index in range(1000)},
            "$",
            "required property 'targetUserIds' is missing",
        ),
    ],
    ids=["maxItems", "minItems", "type", "type-in-list", "pattern", "maxLength", "additionalProperties", "required"],
)
def test_a_long_value_leaves_the_reason_whole(output: dict[str, Any], path: str, message: str) -> None:
    """Messages are written from the error's kind and never quote the value: its size cannot crowd out the reason."""
    result = validate(output)
    assert {"path": path, "message": message} in result.validation_errors
    assert all(len(error["message"]) <= MAX_MESSAGE_CHARS for error in result.validation_errors)
    assert not any("user-" in error["message"] or "x" * 40 in error["message"] for error in result.validation_errors)


def test_many_unknown_properties_are_counted_not_listed() -> None:
    output = {"targetUserIds": ["u1"], **{f"field{index}": index for index in range(10_000)}}
    (error,) = validate(output).validation_errors
    assert error["path"] == "$"
    assert error["message"].startswith("unknown properties 'field")
    assert " and 9995 more; allowed: " in error["message"]


def test_a_hostile_output_gets_every_error_each_with_a_bounded_message() -> None:
    """A mapping can return about 1 MiB of output; every error is reported, none with a long message."""
    ids = ["", *["\u0000" * 100] * 1000, *[[LONG]] * 9]
    errors = validate({"targetUserIds": ids, LONG: [LONG], "variables": LONG}).validation_errors
    assert len(errors) == 1 + 1000 + 9 + 1 + 1  # minLength, pattern, type (items); unknown property; variables
    assert max(len(error["message"]) for error in errors) <= MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    ("spec", "nearest"),
    [
        ({"kind": "javascript", "source": "function map(r) { return r; }\n" * 200, "x": 1}, "$: unknown property 'x'"),
        ({"kind": "javascript", "source": 5}, "$.source: must be a string, not a number"),
        ({"kind": "jmespath", "fields": {"targetUserIds": ["body.id"]}}, "$.fields.targetUserIds: must be a string"),
    ],
    ids=["extra-field", "source-not-text", "field-not-text"],
)
def test_a_spec_error_gives_the_nearest_shapes_reason_without_quoting_the_spec(
    spec: dict[str, Any], nearest: str
) -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping(spec)
    assert caught.value.message.startswith(f"$: matches none of the 4 allowed shapes; nearest: {nearest}")
    assert "function map" not in caught.value.message and "body.id" not in caught.value.message


@pytest.mark.parametrize(
    "spec",
    [
        {
            "kind": "javascript",
            "source": "function map(r) { return {targetUserIds: r.body.targetUserIds, variables: {}}; }",
        },
        {"kind": "jmespath", "expression": "{targetUserIds: body.targetUserIds, variables: `{}`}"},
        {"kind": "jmespath", "fields": {"targetUserIds": "body.targetUserIds", "variables": "`{}`"}},
        {"kind": "passthrough"},
    ],
    ids=["javascript", "jmespath-expression", "jmespath-fields", "passthrough"],
)
def test_a_lone_string_of_ids_is_a_list_of_one_for_every_kind(spec: dict[str, Any]) -> None:
    """The seed's event mappings set targetUserIds "to a string"; the preview shows the list the flow gets."""
    raw = b'{"targetUserIds": "u-7", "variables": {}}'
    result = compile_mapping(spec).run(make_request("POST", "/", {}, "", raw, "application/json"))
    assert result.ok, result.validation_errors
    assert result.output == result.mapped == {"targetUserIds": ["u-7"], "variables": {}}
    assert result.to_dict()["output"] == {"targetUserIds": ["u-7"], "variables": {}}


def test_wrapping_the_ids_leaves_the_request_alone() -> None:
    """An expression may return the request's own body; the list of one is a new output, not an edit of it."""
    the_request = make_request("POST", "/", {}, "", b'{"targetUserIds": "u-7"}', "application/json")
    result = compile_mapping({"kind": "jmespath", "expression": "body"}).run(the_request)
    assert result.output == {"targetUserIds": ["u-7"]}
    assert the_request["body"] == {"targetUserIds": "u-7"}


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
