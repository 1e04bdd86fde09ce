"""A CSV bulk-start file: its header checked at upload, each row read into what it starts.

Pure: no HTTP, no database. `parse_csv` refuses a file whose header cannot
work (every problem listed) and keeps the rows as text; `read_row` turns one
row into its target (customer attributes to match, or user ids for the test
sender), its flow (test sender), its key and its payload sections;
`typed_variables` gives the variables the types the flow declares. A row
that cannot start anything gets a `Skipped` instead: a stable code (what a
program reads) and the reason in words (what a person reads).

Rows are numbered as a spreadsheet numbers them: the header is row 1, the
first data row is row 2. Blank lines are not rows.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

MAX_ROWS = 100_000
ATTRIBUTE = "target.attributes."
USERS = "payload.target.usersById"
FLOW = "flowConfigId"
KEY = "flowInvocationId"
SECTIONS = {
    "payload.variables.": "variables",
    "payload.metadata.": "metadata",
    "payload.notificationDetail.": "notificationDetail",
    "payload.cardOptions.": "cardOptions",
}
SEPARATOR = "|"
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class CsvRefused(Exception):
    """The file cannot be a task; `problems` says every reason (`{path, message}`, path `row 1` for the header)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(problems[0]["message"])
        self.problems = problems


@dataclass(frozen=True)
class CsvFile:
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (row number, cells)


@dataclass(frozen=True)
class Skipped:
    """Why a row starts nothing: `code` stays the same whatever `reason` says."""

    code: str
    reason: str


@dataclass
class Row:
    """What one row asks for, before the flow's variable types are applied."""

    attributes: list[tuple[str, str]] = field(default_factory=list)  # (attribute, text): every one must match
    user_ids: list[str] | None = None  # the test sender's `payload.target.usersById`
    flow_id: str | None = None  # the test sender's `flowConfigId`
    key: str | None = None
    sections: dict[str, dict[str, str]] = field(default_factory=dict)  # {"variables": {"firstName": "Ann"}}


def parse_csv(data: bytes, *, test: bool) -> CsvFile:
    """The file's header and rows; a CsvRefused listing what is wrong with it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvRefused([_problem("$", f"the file is not UTF-8 (byte {error.start})")]) from None
    if "\x00" in text:
        raise CsvRefused([_problem("$", "the file holds the NUL character (U+0000)")])
    records = enumerate(csv.reader(io.StringIO(text, newline="")), 1)
    try:
        header = next(records, None)
        if header is None:
            raise CsvRefused([_problem("$", "the file is empty: a header row is required")])
        # Read no further than one row past the limit: 10 MiB of blank-ish lines are millions of records.
        rows = list(islice(((n, cells) for n, cells in records if any(cell.strip() for cell in cells)), MAX_ROWS + 1))
    except csv.Error as error:
        raise CsvRefused([_problem("$", f"the file is not valid CSV: {error}")]) from None
    columns = [name.strip() for name in header[1]]
    problems = header_problems(columns, test=test)
    if not rows:
        problems.append(_problem("$", "the file has a header and no rows"))
    if len(rows) > MAX_ROWS:
        problems.append(_problem("$", f"the file has more than {MAX_ROWS} rows; at most {MAX_ROWS} are allowed"))
    if problems:
        raise CsvRefused(problems)
    return CsvFile(columns, rows)


def header_problems(columns: list[str], *, test: bool) -> list[dict[str, str]]:
    """Every reason the header cannot work: unknown or repeated columns, no target, test-only columns live."""
    problems: list[dict[str, str]] = []
    for index, name in enumerate(columns, 1):
        at = f"row 1, column {index}"
        if columns.index(name) != index - 1:
            problems.append(_problem(at, f"column {name!r} appears twice"))
        elif not _known(name):
            allowed = f"{ATTRIBUTE}<field>, {', '.join(prefix + '<name>' for prefix in SECTIONS)}, {KEY}"
            if test:
                allowed += f", {FLOW}, {USERS}"
            problems.append(_problem(at, f"unknown column {name!r}; allowed: {allowed}"))
        elif name in (FLOW, USERS) and not test:
            problems.append(_problem(at, f"column {name!r} is for the test sender (…/csv-task/test) only"))
    by_attribute = any(name.startswith(ATTRIBUTE) and _known(name) for name in columns)
    if not by_attribute and not (test and USERS in columns):
        target = f"{ATTRIBUTE}<field> column" + (f" or a {USERS} column" if test else "")
        problems.append(_problem("row 1", f"no target: add a {target}"))
    if by_attribute and test and USERS in columns:
        problems.append(_problem("row 1", f"target customers by {ATTRIBUTE}<field> or by {USERS}, not both"))
    return problems


def _known(name: str) -> bool:
    if name in (KEY, FLOW, USERS):
        return True
    prefixes = (ATTRIBUTE, *SECTIONS)
    return any(name.startswith(prefix) and len(name) > len(prefix) for prefix in prefixes)


def _problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def read_row(columns: list[str], cells: list[str]) -> Row | Skipped:
    """What the row asks for, or why it cannot ask for anything. An empty cell gives no value."""
    if len(cells) != len(columns):
        return Skipped("wrong_cell_count", f"the row has {len(cells)} cells; the header has {len(columns)}")
    row = Row()
    for name, cell in zip(columns, cells, strict=True):
        if name.startswith(ATTRIBUTE):
            row.attributes.append((name[len(ATTRIBUTE) :], cell))  # an empty cell matches an empty attribute
        elif cell == "":
            continue
        elif name == USERS:
            row.user_ids = [user.strip() for user in cell.split(SEPARATOR) if user.strip()]
        elif name == FLOW:
            row.flow_id = cell.strip()
        elif name == KEY:
            row.key = cell
        else:
            prefix = next(prefix for prefix in SECTIONS if name.startswith(prefix))
            row.sections.setdefault(SECTIONS[prefix], {})[name[len(prefix) :]] = cell
    if row.user_ids == [] or (not row.attributes and row.user_ids is None):
        return Skipped("no_users", f"the row names no user in {USERS}")
    if row.key is not None and len(row.key) > 128:
        return Skipped("key_too_long", f"{KEY} is longer than 128 characters")
    return row


def typed_variables(texts: dict[str, str], declarations: list[dict[str, Any]]) -> dict[str, Any] | Skipped:
    """The row's variables with the declared types (number, boolean, object from JSON text); strings and
    undeclared variables stay text. A value the type cannot hold is the reason the row is skipped."""
    types = {declaration.get("name"): declaration.get("type", "string") for declaration in declarations}
    variables: dict[str, Any] = {}
    for name, text in texts.items():
        value = _typed(text, types.get(name, "string"))
        if value is None:
            return Skipped("invalid_variable", f"payload.variables.{name}: {text!r} is not {_a(types[name])}")
        variables[name] = value
    return variables


def cell_number(text: str) -> int | float | None:
    """The cell as a JSON number, or None when it is not one.

    Spaces around it are ignored, and it is read as JSON is read everywhere
    else (orjson): an integer beyond 64 bits becomes a float, as it does in a
    customer's attributes, and one beyond a float's range is no number. One
    reading for a `number` variable and for a cell matched against a numeric
    attribute (store.bulk_tasks).
    """
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    try:
        number: int | float = orjson.loads(text)
    except orjson.JSONDecodeError:  # "number is infinity when parsed as double"
        return None
    return number


def _typed(text: str, type_name: str) -> Any:
    """`text` as a value of the type, or None when it is not one."""
    if type_name == "number":
        return cell_number(text)
    if type_name == "boolean":
        return {"true": True, "false": False}.get(text.strip().lower())
    if type_name == "object":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return text


def _a(type_name: str) -> str:
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"
