"""No-code mappings: JMESPath field maps, single expressions and passthrough."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mapper import MappingResult, MappingSpecError, compile_mapping, make_request

BODY = {
    "id": "evt_1",
    "customer": {"id": 42, "first_name": "Ada", "nickname": None, "plan": "pro"},
    "user": {"id": "u-7", "vars": {"firstName": "Grace"}},
    "ids": [1, "2", 3],
}


def request(body: Any = BODY, headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    return make_request("POST", "/hooks/test", headers or {}, query, json.dumps(body).encode(), "application/json")


def fields(mapping: dict[str, str], variables: list[dict[str, Any]] | None = None, query: str = "") -> MappingResult:
    return compile_mapping({"kind": "jmespath", "fields": mapping}, variables=variables).run(request(query=query))


def expression(text: str, body: Any = BODY) -> MappingResult:
    return compile_mapping({"kind": "jmespath", "expression": text}).run(request(body))


def passthrough(body: Any) -> MappingResult:
    return compile_mapping({"kind": "passthrough"}).run(request(body))


# ---- field maps ----------------------------------------------------------------


def test_field_map_from_the_spec_example() -> None:
    result = compile_mapping(
        {
            "kind": "jmespath",
            "fields": {
                "targetUserIds": "body.user.id",
                "variables.firstName": "body.customer.first_name",
                "flowInvocationId": 'headers."x-request-id"',
            },
        }
    ).run(request(headers={"X-Request-Id": "req-1"}))
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": ["u-7"], "variables": {"firstName": "Ada"}, "flowInvocationId": "req-1"}
    assert result.logs == [] and result.error is None
    assert isinstance(result.duration_ms, float) and result.duration_ms >= 0


def test_dotted_targets_nest_and_share_parents() -> None:
    result = fields(
        {
            "targetUserIds": "body.user.id",
            "variables.plan": "body.customer.plan",
            "metadata.source.kind": "'stripe'",
            "metadata.source.event": "body.id",
            "metadata.query": "query.tag",
        },
        query="tag=a&tag=b",
    )
    assert result.ok, result.to_dict()
    assert result.output == {
        "targetUserIds": ["u-7"],
        "variables": {"plan": "pro"},
        "metadata": {"source": {"kind": "stripe", "event": "evt_1"}, "query": ["a", "b"]},
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("body.user.id", ["u-7"]),
        ("body.customer.id", ["42"]),
        ("body.ids", ["1", "2", "3"]),
        ("[body.user.id, body.customer.id]", ["u-7", "42"]),
    ],
)
def test_target_user_ids_are_wrapped_and_stringified(source: str, expected: list[str]) -> None:
    result = fields({"targetUserIds": source})
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": expected}


def test_numeric_values_elsewhere_stay_numbers() -> None:
    result = fields({"targetUserIds": "body.user.id", "variables.customerId": "body.customer.id"})
    assert result.output == {"targetUserIds": ["u-7"], "variables": {"customerId": 42}}


def test_boolean_target_user_ids_are_not_stringified() -> None:
    result = fields({"targetUserIds": "`true`"})
    assert not result.ok
    assert [error["path"] for error in result.validation_errors] == ["$.targetUserIds"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"u": [1, 2.5, "a"]}, ["1", "2.5", "a"]),
        ({"u": 2.5}, ["2.5"]),
        ({"u": [-7, 1.0, 0.001, 1e21]}, ["-7", "1", "0.001", "1e+21"]),
    ],
)
def test_every_number_in_target_user_ids_becomes_its_javascript_text(body: Any, expected: list[str]) -> None:
    result = compile_mapping({"kind": "jmespath", "fields": {"targetUserIds": "body.u"}}).run(request(body))
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": expected}


def test_booleans_in_target_user_ids_are_not_numbers() -> None:
    result = compile_mapping({"kind": "jmespath", "fields": {"targetUserIds": "body.u"}}).run(request({"u": [1, True]}))
    assert result.output == {"targetUserIds": ["1", True]}
    assert [error["path"] for error in result.validation_errors] == ["$.targetUserIds[1]"]


def test_non_finite_numbers_in_target_user_ids_are_not_stringified() -> None:
    result = fields({"targetUserIds": "[to_number('NaN'), to_number('-Infinity')]"})
    assert not result.ok
    assert [error["path"] for error in result.validation_errors] == ["$.targetUserIds[0]", "$.targetUserIds[1]"]


def test_null_fields_are_left_out_so_defaults_apply() -> None:
    declarations = [{"name": "nickname", "default": "friend"}, {"name": "city", "default": "Paris"}]
    result = fields(
        {
            "targetUserIds": "body.user.id",
            "variables.nickname": "body.customer.nickname",
            "variables.city": "body.nowhere.city",
        },
        variables=declarations,
    )
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": ["u-7"], "variables": {"nickname": "friend", "city": "Paris"}}


def test_missing_target_user_ids_is_a_validation_error() -> None:
    result = fields({"targetUserIds": "body.nobody", "variables.plan": "body.customer.plan"})
    assert not result.ok and not result.skipped
    assert result.output == {"variables": {"plan": "pro"}}
    assert result.validation_errors == [{"path": "$", "message": result.validation_errors[0]["message"]}]
    assert "targetUserIds" in result.validation_errors[0]["message"]


def test_unknown_output_field_is_a_validation_error() -> None:
    result = fields({"targetUserIds": "body.user.id", "extra": "body.id"})
    assert not result.ok
    assert len(result.validation_errors) == 1
    assert "extra" in result.validation_errors[0]["message"]


# ---- expressions -----------------------------------------------------------------


def test_expression_form_builds_the_whole_request() -> None:
    result = expression("{targetUserIds: [body.user.id], flowInvocationId: body.id, variables: body.user.vars}")
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": ["u-7"], "flowInvocationId": "evt_1", "variables": {"firstName": "Grace"}}


def test_expression_form_does_not_rewrite_ids() -> None:
    result = expression("{targetUserIds: [body.customer.id]}")
    assert not result.ok
    assert [error["path"] for error in result.validation_errors] == ["$.targetUserIds[0]"]


@pytest.mark.parametrize("text", ["body.absent", "`null`", "body.customer.nickname"])
def test_null_expression_skips(text: str) -> None:
    result = expression(text)
    assert result.ok and result.skipped
    assert result.output is None and result.error is None


def test_expression_can_skip_conditionally() -> None:
    text = "body.type == 'customer.created' && {targetUserIds: [body.user.id]} || `null`"
    assert expression(text, {**BODY, "type": "customer.deleted"}).skipped
    created = expression(text, {**BODY, "type": "customer.created"})
    assert created.ok and created.output == {"targetUserIds": ["u-7"]}


# ---- spec errors --------------------------------------------------------------------


def test_bad_expression_is_a_spec_error_with_its_path() -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping({"kind": "jmespath", "expression": "body.customer.["})
    assert caught.value.path == "$.expression"
    assert "JMESPath" in caught.value.message


@pytest.mark.parametrize(
    ("text", "says", "column"),
    [
        ("{firstName: body.data.object.name", "incomplete expression: missing '}' to close the '{' at column 1", 34),
        ("body.items[?price >", "nothing follows the '>' at column 19, and the '[?' at column 11 is not closed", 20),
        ("body.a ||", "incomplete expression: nothing follows the '||' at column 8", 10),
        ("`{", "Unclosed ` delimiter", 1),
        ("foo bar", "Unexpected token: bar", 5),
    ],
)
def test_a_parse_error_says_what_is_wrong_and_where(text: str, says: str, column: int) -> None:
    """jmespath says only "Invalid jmespath expression" of an expression that ends too soon or fails to lex;
    the column is where it stops reading."""
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping({"kind": "jmespath", "fields": {"firstName": text}})
    assert caught.value.message.startswith("invalid JMESPath expression: ") and says in caught.value.message
    assert (caught.value.path, caught.value.column) == ("$.fields['firstName']", column)


def test_bad_field_expression_names_the_field() -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping({"kind": "jmespath", "fields": {"targetUserIds": "body.user.id", "variables.first": "body..x"}})
    path = caught.value.path
    assert path is not None and path.startswith("$.fields[") and "variables.first" in path


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "jmespath"},
        {"kind": "jmespath", "fields": {}},
        {"kind": "jmespath", "fields": {"targetUserIds": "body.id"}, "expression": "body"},
        {"kind": "jmespath", "fields": {"targetUserIds": ""}},
        {"kind": "jmespath", "fields": {"targetUserIds": 5}},
        {"kind": "jmespath", "fields": {"not a path": "body"}},
        {"kind": "jmespath", "expression": ""},
        {"kind": "passthrough", "extra": 1},
        {"kind": "lua", "source": "x"},
        {},
    ],
)
def test_malformed_specs_are_spec_errors(spec: dict[str, Any]) -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping(spec)
    assert caught.value.path is not None and caught.value.path.startswith("$")
    assert caught.value.message


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"kind": "jmespath", "expression": "{targetUserIds: nosuch(body.ids)}"}, "unknown JMESPath function nosuch()"),
        ({"kind": "jmespath", "fields": {"targetUserIds": "length(body.ids, body.id)"}}, "length() takes 1 argument"),
    ],
)
def test_calls_that_can_never_run_are_spec_errors(spec: dict[str, Any], says: str) -> None:
    """JMESPath finds these only when it runs: saved, they would fail every request."""
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping(spec)
    assert says in caught.value.message


def test_unknown_kind_is_named() -> None:
    with pytest.raises(MappingSpecError, match="'lua'"):
        compile_mapping({"kind": "lua"})


def test_non_object_spec() -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping("body.id")  # type: ignore[arg-type]
    assert caught.value.path == "$"


def test_a_field_that_is_also_a_parent_is_a_spec_error() -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping(
            {
                "kind": "jmespath",
                "fields": {"targetUserIds": "body.ids", "variables": "body.user.vars", "variables.x": "body.id"},
            }
        )
    assert caught.value.path == "$.fields"
    assert "'variables'" in caught.value.message


# ---- runtime errors ----------------------------------------------------------------


def test_runtime_error_in_a_field_is_a_jmespath_error() -> None:
    result = fields({"targetUserIds": "body.user.id", "variables.n": "abs(body.customer.first_name)"})
    assert not result.ok and result.output is None
    assert result.error is not None
    assert result.error["type"] == "JMESPathError"
    assert "variables.n" in result.error["message"]
    assert set(result.error) == {"type", "message", "line", "column", "stack"}


def test_ordering_a_string_against_a_number_is_null_as_the_spec_says() -> None:
    """jmespath 1.1 raises TypeError here; a sender controls the body, so it must not be able to crash a mapping."""
    result = expression("{targetUserIds: [body.id > `4` && 'older' || 'younger']}", body={"id": "5"})
    assert result.ok and result.output == {"targetUserIds": ["younger"]}


def test_a_function_on_mixed_types_is_a_jmespath_error() -> None:
    result = expression("{targetUserIds: [sort_by(body.items, &v)[0].id]}", body={"items": [{"v": 1}, {"v": "x"}]})
    assert result.error is not None and result.error["type"] == "JMESPathError"


def test_runtime_error_in_an_expression_is_a_jmespath_error() -> None:
    result = expression("{targetUserIds: [to_string(length(body.customer.id))]}")
    assert result.error is not None
    assert result.error["type"] == "JMESPathError"
    assert "$.expression" in result.error["message"]


# ---- passthrough ---------------------------------------------------------------------


def test_passthrough_returns_the_body() -> None:
    body = {
        "targetUserIds": ["u1", "u2"],
        "flowInvocationId": "inv-1",
        "variables": {"a": 1},
        "notificationDetail": {},
        "metadata": {"m": True},
    }
    result = passthrough(body)
    assert result.ok and result.output == body


def test_passthrough_validates_the_body() -> None:
    result = passthrough({"targetUserIds": 7, "extra": 1})
    assert not result.ok
    assert {error["path"] for error in result.validation_errors} == {"$", "$.targetUserIds"}


def test_passthrough_of_a_null_body_skips() -> None:
    result = compile_mapping({"kind": "passthrough"}).run(
        make_request("POST", "/", {}, "", b"null", "application/json")
    )
    assert result.ok and result.skipped


def test_passthrough_does_not_alias_the_request_body() -> None:
    the_request = request({"targetUserIds": ["u1"]})
    result = compile_mapping({"kind": "passthrough"}, variables=[{"name": "plan", "default": "free"}]).run(the_request)
    assert result.output == {"targetUserIds": ["u1"], "variables": {"plan": "free"}}
    assert the_request["body"] == {"targetUserIds": ["u1"]}


def test_passthrough_of_text_is_a_validation_error() -> None:
    result = compile_mapping({"kind": "passthrough"}).run(make_request("POST", "/", {}, "", b"hello", "text/plain"))
    assert not result.ok
    assert [error["path"] for error in result.validation_errors] == ["$"]
