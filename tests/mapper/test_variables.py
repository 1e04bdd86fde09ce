"""A flow's declared variables applied to a valid trigger request (SPEC §2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mapper import MappingResult, MappingSpecError, compile_mapping, make_request


def apply(variables: dict[str, Any] | None, declarations: list[Any]) -> MappingResult:
    output: dict[str, Any] = {"targetUserIds": ["u1"]}
    if variables is not None:
        output["variables"] = variables
    raw = json.dumps(output).encode()
    mapping = compile_mapping({"kind": "passthrough"}, variables=declarations)
    return mapping.run(make_request("POST", "/", {}, "", raw, "application/json"))


def declared(result: MappingResult) -> dict[str, Any]:
    assert result.ok, result.to_dict()
    assert result.output is not None
    variables: dict[str, Any] = result.output["variables"]
    return variables


DECLARATIONS = [
    {"name": "firstName", "type": "string", "default": "there"},
    {"name": "credits", "type": "number", "default": 10},
    {"name": "ratio", "type": "number", "default": 0.5},
    {"name": "vip", "type": "boolean", "default": False},
    {"name": "profile", "type": "object", "default": {"tier": "free"}},
    {"name": "nickname"},
]


def test_defaults_fill_missing_variables() -> None:
    assert declared(apply(None, DECLARATIONS)) == {
        "firstName": "there",
        "credits": 10,
        "ratio": 0.5,
        "vip": False,
        "profile": {"tier": "free"},
    }


def test_mapped_values_override_defaults() -> None:
    mapped = {"firstName": "Ada", "credits": 0, "ratio": 2, "vip": True, "profile": {}, "nickname": "ace"}
    assert declared(apply(mapped, DECLARATIONS)) == mapped


def test_null_mapped_value_takes_the_default() -> None:
    assert declared(apply({"firstName": None}, DECLARATIONS))["firstName"] == "there"


def test_undeclared_variables_pass_through() -> None:
    result = declared(apply({"orderId": "o-1", "items": [1, 2], "firstName": "Ada"}, DECLARATIONS))
    assert result["orderId"] == "o-1" and result["items"] == [1, 2] and result["firstName"] == "Ada"


def test_no_declarations_leave_the_output_alone() -> None:
    result = apply(None, [])
    assert result.ok and result.output == {"targetUserIds": ["u1"]}
    result = apply({"x": 1}, [])
    assert result.ok and result.output == {"targetUserIds": ["u1"], "variables": {"x": 1}}


def test_missing_required_variable_is_named() -> None:
    result = apply(
        {"other": 1}, [{"name": "email", "required": True}, {"name": "plan", "required": True, "default": "free"}]
    )
    assert not result.ok and result.error is None
    assert result.validation_errors == [
        {"path": "$.variables.email", "message": result.validation_errors[0]["message"]}
    ]
    assert "email" in result.validation_errors[0]["message"]
    # What the mapping returned, before the default of `plan`: the preview tells a field left out by it.
    assert result.mapped == {"targetUserIds": ["u1"], "variables": {"other": 1}}
    assert result.output is not None and result.output["variables"]["plan"] == "free"


def test_null_counts_as_missing_for_required() -> None:
    result = apply({"email": None}, [{"name": "email", "required": True}])
    assert [error["path"] for error in result.validation_errors] == ["$.variables.email"]


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("string", 5),
        ("string", ["a"]),
        ("number", "5"),
        ("number", True),
        ("number", False),
        ("boolean", "true"),
        ("boolean", 1),
        ("object", [1]),
        ("object", "{}"),
    ],
)
def test_wrong_type_is_named(type_name: str, value: Any) -> None:
    result = apply({"v": value}, [{"name": "v", "type": type_name}])
    assert not result.ok
    (error,) = result.validation_errors
    assert error["path"] == "$.variables.v"
    assert "'v'" in error["message"] and type_name in error["message"]


def test_every_variable_error_is_reported() -> None:
    declarations = [
        {"name": "a", "type": "string"},
        {"name": "b", "type": "number"},
        {"name": "c", "required": True},
        {"name": "first name", "type": "boolean"},
    ]
    result = apply({"a": 1, "b": "x", "first name": "yes"}, declarations)
    assert [error["path"] for error in result.validation_errors] == [
        "$.variables.a",
        "$.variables.b",
        "$.variables.c",
        '$.variables["first name"]',
    ]


def test_type_defaults_to_string() -> None:
    result = apply({"v": 1}, [{"name": "v"}])
    assert [error["path"] for error in result.validation_errors] == ["$.variables.v"]


def test_schema_errors_come_before_variables() -> None:
    result = compile_mapping({"kind": "passthrough"}, variables=[{"name": "a", "default": "x"}]).run(
        make_request("POST", "/", {}, "", b'{"variables": {}}', "application/json")
    )
    assert [error["path"] for error in result.validation_errors] == ["$"]


@pytest.mark.parametrize(
    ("declarations", "path", "says"),
    [
        ([{"type": "string"}], "$.variables[0]", "name"),
        ([{"name": ""}], "$.variables[0]", "name"),
        ([{"name": 5}], "$.variables[0]", "name"),
        ([{"name": "a"}, {"name": "a"}], "$.variables[1]", "twice"),
        ([{"name": "a"}, {"name": "d", "type": "date"}], "$.variables[1]", "date"),
        ([{"name": "o", "type": {}}], "$.variables[0]", "unknown type {}"),
        ([{"name": "l", "type": ["string"]}], "$.variables[0]", "unknown type ['string']"),
        ([{"name": "a", "type": "number", "default": "1"}], "$.variables[0]", "default"),
        ([{"name": "a", "type": "number", "default": True}], "$.variables[0]", "default"),
        ([{"name": "a", "type": "object", "default": []}], "$.variables[0]", "default"),
    ],
)
def test_bad_declarations_are_spec_errors(declarations: list[Any], path: str, says: str) -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping({"kind": "passthrough"}, variables=declarations)
    assert caught.value.path == path
    assert says in caught.value.message


@pytest.mark.parametrize("declarations", [["email"], [None], {"email": {"type": "string"}}])
def test_non_object_declarations_are_spec_errors(declarations: Any) -> None:
    with pytest.raises(MappingSpecError):
        compile_mapping({"kind": "passthrough"}, variables=declarations)
