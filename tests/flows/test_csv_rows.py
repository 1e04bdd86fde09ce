"""flows.csv_rows alone: parsing a bulk-start file, reading a row, typing its variables."""

from __future__ import annotations

from typing import Any

import pytest

from flows.csv_rows import MAX_ROWS, CsvRefused, Row, Skipped, parse_csv, read_row, typed_variables


def test_quoting_the_bom_and_row_numbers_follow_rfc_4180_and_spreadsheets() -> None:
    data = (
        '\ufefftarget.attributes.email,payload.variables.note\r\n"a@x","two\r\nlines, and ""quotes"""\r\n\r\nb@x,\r\n'
    )
    parsed = parse_csv(data.encode(), test=False)
    assert parsed.columns == ["target.attributes.email", "payload.variables.note"]
    assert parsed.rows == [(2, ["a@x", 'two\r\nlines, and "quotes"']), (4, ["b@x", ""])]


def test_a_file_with_too_many_rows_is_refused() -> None:
    data = "target.attributes.id\n" + "x\n" * (MAX_ROWS + 1)
    with pytest.raises(CsvRefused) as refused:
        parse_csv(data.encode(), test=False)
    assert refused.value.problems == [
        {"path": "$", "message": f"the file has more than {MAX_ROWS} rows; at most {MAX_ROWS} are allowed"}
    ]


def test_a_row_reads_into_its_target_key_and_payload_sections() -> None:
    columns = [
        "target.attributes.plan",
        "payload.variables.firstName",
        "payload.notificationDetail.title",
        "flowInvocationId",
        "payload.metadata.empty",
    ]
    assert read_row(columns, ["gold", "Ann", "Hi", "k-1", ""]) == Row(
        attributes=[("plan", "gold")],
        key="k-1",
        sections={"variables": {"firstName": "Ann"}, "notificationDetail": {"title": "Hi"}},
    )
    assert read_row(columns, ["gold"]) == Skipped("wrong_cell_count", "the row has 1 cells; the header has 5")
    users = ["flowConfigId", "payload.target.usersById"]
    assert read_row(users, ["flw_1", " a | b ||c"]) == Row(user_ids=["a", "b", "c"], flow_id="flw_1")
    assert read_row(users, ["", "|"]) == Skipped("no_users", "the row names no user in payload.target.usersById")
    assert read_row(["target.attributes.x", "flowInvocationId"], ["1", "k" * 129]) == Skipped(
        "key_too_long", "flowInvocationId is longer than 128 characters"
    )


DECLARED = [
    {"name": "n", "type": "number"},
    {"name": "b", "type": "boolean"},
    {"name": "o", "type": "object"},
    {"name": "s", "type": "string"},
]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (
            {"n": "12", "b": "TRUE", "o": '{"k": [1]}', "s": "a|b", "free": "7"},
            {"n": 12, "b": True, "o": {"k": [1]}, "s": "a|b", "free": "7"},
        ),
        ({"n": "-3.5e2"}, {"n": -350.0}),
        ({"n": "01"}, Skipped("invalid_variable", "payload.variables.n: '01' is not a number")),
        ({"n": "1e999"}, Skipped("invalid_variable", "payload.variables.n: '1e999' is not a number")),
        ({"n": "NaN"}, Skipped("invalid_variable", "payload.variables.n: 'NaN' is not a number")),
        ({"n": "1" * 30}, {"n": 1.111111111111111e29}),  # beyond 64 bits, a float, as JSON reads it
        ({"n": "9" * 5000}, Skipped("invalid_variable", f"payload.variables.n: '{'9' * 5000}' is not a number")),
        ({"b": "yes"}, Skipped("invalid_variable", "payload.variables.b: 'yes' is not a boolean")),
        ({"o": "[1]"}, Skipped("invalid_variable", "payload.variables.o: '[1]' is not an object")),
        ({"o": "{"}, Skipped("invalid_variable", "payload.variables.o: '{' is not an object")),
    ],
)
def test_variables_take_the_declared_types(texts: dict[str, str], expected: Any) -> None:
    assert typed_variables(texts, DECLARED) == expected
