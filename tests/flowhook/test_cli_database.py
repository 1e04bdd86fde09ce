"""`flowhook serve` and `worker` run as real processes on a database they cannot use: one line, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

EXIT_BAD_INPUT = 2
PASSWORD = "s3cret-pw-0123"


def flowhook(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flowhook", *args, "--data-dir", str(tmp_path / "data")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def closed_port() -> int:
    """A local port nothing listens on: one the OS just handed out and took back."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path, command: str) -> None:
    url = f"postgresql://flowhook:{PASSWORD}@127.0.0.1:{closed_port()}/x"
    done = flowhook(tmp_path, command, "--database", url)
    assert done.returncode == EXIT_BAD_INPUT
    [line] = done.stderr.splitlines()
    shown = url.replace(PASSWORD, "***")
    assert line.startswith(f"flowhook: cannot connect to the database at {shown}: ") and "refused" in line.lower()
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (f"mysql://u:{PASSWORD}@db/x", "flowhook: unsupported database URL mysql://u:***@db/x: no driver MySQLdb"),
        ("foo://x", "flowhook: unsupported database URL foo://x: no driver foo"),
        (f"postgresql://u:{PASSWORD}@db:port/x", "flowhook: --database is not a database URL"),
    ],
    ids=["driver-missing", "unknown-scheme", "unparsable"],
)
def test_an_unusable_database_url_is_one_line(tmp_path: Path, database: str, message: str) -> None:
    done = flowhook(tmp_path, "serve", "--database", database)
    assert done.returncode == EXIT_BAD_INPUT
    [line] = done.stderr.splitlines()
    assert line.startswith(message)
    assert PASSWORD not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_an_address_in_use_is_one_line_before_the_admin_token_is_made(tmp_path: Path) -> None:
    """The first start's token was printed above uvicorn's bind error, and never shown again."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = flowhook(tmp_path, "serve", "--port", str(port))
    assert done.returncode == EXIT_BAD_INPUT
    [line] = done.stderr.splitlines()
    assert line == f"flowhook: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # no database, so the next start makes and shows the token


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # SQLite's case: test_cli_arguments.py
def test_a_worker_refuses_a_postgresql_database_serve_never_made(tmp_path: Path, database: sa.URL) -> None:
    """A mistyped database name on a PostgreSQL server got flowhook's whole schema, and a worker that watched
    it forever, where a mistyped SQLite --data-dir is refused."""
    shown = database.render_as_string(hide_password=True)
    done = flowhook(tmp_path, "worker", "--database", database.render_as_string(hide_password=False))
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == f"flowhook: no flowhook database at {shown}: start `flowhook serve` on it first\n"
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
