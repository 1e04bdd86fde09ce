"""Arguments and settings `serve`, `worker` and `bench` cannot use: one line on stderr, exit 2, nothing started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowhook import cli

EXIT_BAD_INPUT = 2


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What would have started: `serve`, `worker` and `bench` replaced by recorders."""
    calls: list[str] = []
    monkeypatch.setattr("ingress.serve.serve", lambda **kwargs: calls.append("serve"))
    monkeypatch.setattr("flowhook.worker.run_worker", lambda **kwargs: calls.append("worker"))
    monkeypatch.setattr("flowhook.bench.run_bench", lambda **kwargs: calls.append("bench"))
    monkeypatch.setattr("flowhook.cli._check_listening", lambda host, port: None)  # its own test binds for real
    return calls


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stderr of a command that must stop with exit 2 before starting anything."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(list(argv))
    assert stopped.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1", "http"])
def test_a_port_outside_1_to_65535_is_refused(
    started: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, port: str
) -> None:
    """uvicorn took 99999 as 99999 mod 65536 while logging 99999, and -1 failed only after start-up."""
    err = refused(capsys, "serve", "--port", port, "--data-dir", str(tmp_path))
    assert "--port" in err and "1 to 65535" in err
    assert started == []


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_fewer_than_one_worker_is_refused(
    started: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, workers: str
) -> None:
    err = refused(capsys, "serve", "--workers", workers, "--data-dir", str(tmp_path))
    assert "--workers" in err
    assert started == []


def test_a_data_dir_that_cannot_be_created_is_one_line(
    started: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    err = refused(capsys, "serve", "--data-dir", str(tmp_path / "a-file"))
    assert err == f"flowhook: cannot keep the database in {tmp_path / 'a-file'}: it is not a directory\n"
    err = refused(capsys, "serve", "--data-dir", str(tmp_path / "a-file" / "below"))
    assert err.startswith(f"flowhook: cannot keep the database in {tmp_path / 'a-file' / 'below'}: ")
    assert started == []


def test_a_worker_needs_the_database_serve_made(
    started: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped --data-dir got a new, empty database the worker then watched forever."""
    err = refused(capsys, "worker", "--data-dir", str(tmp_path / "typo"))
    database = tmp_path / "typo" / "flowhook.db"
    assert err == f"flowhook: no flowhook database at {database}: start `flowhook serve` on it first\n"
    assert started == [] and not (tmp_path / "typo").exists()


def test_a_missing_data_dir_is_created(started: list[str], tmp_path: Path) -> None:
    assert cli.main(["serve", "--data-dir", str(tmp_path / "new" / "data")]) == 0
    assert (tmp_path / "new" / "data").is_dir() and started == ["serve"]


@pytest.mark.parametrize("database", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused(
    started: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, database: str
) -> None:
    """It would vanish with the process (and SQLAlchemy's pool options for it raised a TypeError)."""
    err = refused(capsys, "serve", "--database", database, "--data-dir", str(tmp_path))
    assert "must name a file" in err
    assert started == []


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("FLOWHOOK_SAMPLE_RETENTION", "abc", "FLOWHOOK_SAMPLE_RETENTION must be an integer, not 'abc'"),
        ("FLOWHOOK_SAMPLE_RETENTION", "1.5", "FLOWHOOK_SAMPLE_RETENTION must be an integer, not '1.5'"),
        ("FLOWHOOK_BODY_TIMEOUT_SECONDS", "soon", "FLOWHOOK_BODY_TIMEOUT_SECONDS must be a number, not 'soon'"),
        ("FLOWHOOK_DURABILITY", "maybe", "durability must be one of fsync, os"),
        (
            "FLOWHOOK_TRUSTED_PROXIES",
            "10.0.0.1, notanip",
            "trusted_proxies (FLOWHOOK_TRUSTED_PROXIES): invalid IP address or CIDR range: 'notanip'",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_setting_that_does_not_parse_is_one_line(
    started: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert refused(capsys, command, "--data-dir", str(tmp_path)) == f"flowhook: {says}\n"
    assert started == []


@pytest.mark.parametrize("seconds", ["nan", "inf", "0", "-1", "soon"])
def test_bench_needs_a_positive_finite_time(
    started: list[str], capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    """`nan` made every measurement loop run forever; 0 and below ran the whole bench anyway."""
    err = refused(capsys, "bench", "--seconds", seconds)
    assert "--seconds" in err
    assert started == []


def test_bench_passes_its_options_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("flowhook.bench.run_bench", lambda **kwargs: seen.update(kwargs))
    assert cli.main(["bench", "--seconds", "0.25", "--mapping-only"]) == 0
    assert seen == {"seconds": 0.25, "include_ingest": False}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLOWHOOK_SAMPLE_RETENTION", "0"),
        ("FLOWHOOK_REQUEST_LOG_RETENTION", "-1"),
        ("FLOWHOOK_SANDBOX_WORKERS", "0"),
        ("FLOWHOOK_EXECUTOR_BATCH", "0"),
        ("FLOWHOOK_EXECUTOR_MAX_ATTEMPTS", "0"),
        ("FLOWHOOK_MAX_BATCH", "0"),
    ],
)
def test_a_retention_or_worker_count_below_one_is_one_line(
    started: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    """A retention of 0 deleted each sample as it was stored; 0 sandbox workers failed only at app start-up."""
    monkeypatch.setenv(variable, value)
    name = variable.removeprefix("FLOWHOOK_").lower()
    says = f"flowhook: {name} ({variable}) must be at least 1, not {value}\n"
    assert refused(capsys, "serve", "--data-dir", str(tmp_path)) == says
    assert started == []


def test_the_data_dir_and_database_variables_stand_in_for_absent_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """FLOWHOOK_DATA_DIR was never honoured (the flag's default always won) and FLOWHOOK_DATABASE only by serve."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("ingress.serve.serve", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr("flowhook.worker.run_worker", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr("flowhook.cli._check_listening", lambda host, port: None)
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path / "from-env"))
    assert cli.main(["serve"]) == 0
    (tmp_path / "from-env" / "flowhook.db").touch()  # as the real serve would have made it
    assert cli.main(["worker"]) == 0
    assert cli.main(["serve", "--data-dir", str(tmp_path / "from-flag")]) == 0
    assert [call["data_dir"] for call in calls] == [str(tmp_path / "from-env")] * 2 + [str(tmp_path / "from-flag")]
    assert (tmp_path / "from-env").is_dir()
