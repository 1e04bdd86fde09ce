"""docs/settings.md lists every variable `Settings.from_env` reads and every flag of `serve` and `worker`.

The names come from the code: the variables by recording what `from_env`
looks up, the flags from the CLI's parser. A new setting without a line in
the docs fails here; so does a line for a setting that is gone.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from flowhook.cli import build_parser
from ingress.settings import Settings

DOCS = Path(__file__).parents[2] / "docs" / "settings.md"
NOT_SETTINGS = {"FLOWHOOK_TEST_POSTGRES"}  # the test suite's, documented there as such


class Recorder(dict[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.append(key)
        return default


def variables_read() -> set[str]:
    environ = Recorder()
    Settings.from_env(environ)
    return set(environ.asked)


def documented_rows() -> set[str]:
    """The first cell of each table row of the docs, as `NAME`."""
    return set(re.findall(r"^\| `([^`]+)` \|", DOCS.read_text(), re.MULTILINE))


def flags(command: str) -> set[str]:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return {
        option
        for action in commands.choices[command]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_every_variable_settings_reads_has_a_row() -> None:
    read = variables_read()
    assert "FLOWHOOK_BODY_TIMEOUT_SECONDS" in read  # the recorder sees what from_env asks for
    assert read - documented_rows() == set()


def test_every_variable_documented_is_read() -> None:
    documented = {name for name in documented_rows() if name.startswith("FLOWHOOK_")}
    assert documented - variables_read() == set()
    assert NOT_SETTINGS.isdisjoint(documented)


def test_every_flag_of_serve_and_worker_has_a_row() -> None:
    assert flags("serve") | flags("worker") <= documented_rows()
