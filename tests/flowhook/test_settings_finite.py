"""A duration of `inf` or `nan` is refused at start, as 0 is: it silently turned its deadline (or pause) off."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from flowhook import cli
from ingress.settings import ABOVE_ZERO, Settings

EXIT_BAD_INPUT = 2
DURATIONS = [spec.name for spec in fields(Settings) if isinstance(getattr(Settings(), spec.name), float)]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e999"])
@pytest.mark.parametrize("name", DURATIONS)
def test_a_duration_must_be_finite(name: str, value: str) -> None:
    variable = f"FLOWHOOK_{name.upper()}"
    says = "must be more than 0 and finite" if name in ABOVE_ZERO else "must be finite"
    with pytest.raises(ValueError, match=rf"^{name} \({variable}\) {says}, not "):
        Settings.from_env({variable: value})


def test_every_timeout_is_among_the_durations_checked() -> None:
    assert {name for name in DURATIONS if name.endswith("_timeout_seconds")} <= set(ABOVE_ZERO)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_stop_before_starting_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    started: list[str] = []
    monkeypatch.setattr("ingress.serve.serve", lambda **kwargs: started.append("serve"))
    monkeypatch.setattr("flowhook.worker.run_worker", lambda **kwargs: started.append("worker"))
    monkeypatch.setattr("flowhook.cli._check_listening", lambda host, port: None)
    monkeypatch.setenv("FLOWHOOK_BODY_TIMEOUT_SECONDS", "inf")
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--data-dir", str(tmp_path)])
    assert stopped.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (
        "flowhook: body_timeout_seconds (FLOWHOOK_BODY_TIMEOUT_SECONDS) must be more than 0 and finite, not inf\n"
    )
    assert started == []
