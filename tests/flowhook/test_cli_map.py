"""`flowhook map` run as a real process: output, exit codes and sample formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXIT_OK, EXIT_MAPPING_FAILED, EXIT_BAD_INPUT = 0, 1, 2

ECHO_SOURCE = """\
function map(request) {
  return {
    targetUserIds: flowhook.toArray(request.body.user_id ?? request.body.user?.id),
    variables: { body: request.body, query: request.query, contentType: request.contentType, raw: request.rawBody },
  };
}
"""
ECHO = {"kind": "javascript", "source": ECHO_SOURCE}
FIELDS = {"kind": "jmespath", "fields": {"targetUserIds": "body.user.id", "variables.plan": "body.plan"}}
RAW_SAMPLE = {"method": "POST", "headers": {"X-Request-Id": "r1"}, "query": {"q": "1"}, "body": {"user": {"id": 7}}}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def flowhook_map(tmp_path: Path) -> Any:
    """Writes each argument to a file and runs `flowhook map` on them."""

    def run(mapping: Any, sample: Any, variables: Any = None, *extra: str) -> Outcome:
        files = {}
        for name, content in (("mapping", mapping), ("sample", sample), ("variables", variables)):
            if content is None:
                continue
            path = tmp_path / f"{name}.json"
            path.write_text(content if isinstance(content, str) else json.dumps(content))
            files[name] = path
        command = [
            sys.executable,
            "-m",
            "flowhook",
            "map",
            "--mapping",
            str(files["mapping"]),
            "--sample",
            str(files["sample"]),
        ]
        if "variables" in files:
            command += ["--variables", str(files["variables"])]
        done = subprocess.run(command + list(extra), capture_output=True, text=True, timeout=60, cwd=tmp_path)
        return Outcome(done.returncode, done.stdout, done.stderr)

    return run


def test_ok_prints_the_result_and_exits_0(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE)
    assert outcome.code == EXIT_OK, outcome.stderr
    result = outcome.json
    assert set(result) == {"ok", "skipped", "output", "error", "validationErrors", "logs", "durationMs"}
    assert result["ok"] is True
    assert result["output"] == {"targetUserIds": ["7"]}
    assert isinstance(result["durationMs"], (int, float)) and result["durationMs"] >= 0


def test_raw_sample_with_json_body(flowhook_map: Any) -> None:
    sample = {"method": "POST", "query": {"one": "1", "many": ["a", "b"]}, "body": {"user_id": "U1", "n": 2}}
    outcome = flowhook_map(ECHO, sample)
    assert outcome.code == EXIT_OK, outcome.stdout + outcome.stderr
    variables = outcome.json["output"]["variables"]
    assert variables["body"] == {"user_id": "U1", "n": 2}
    assert variables["query"] == {"one": "1", "many": ["a", "b"]}
    assert variables["contentType"] == "application/json"
    assert json.loads(variables["raw"]) == {"user_id": "U1", "n": 2}


def test_raw_sample_with_form_body(flowhook_map: Any) -> None:
    sample = {"headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": "user_id=U9&text=hi+there"}
    outcome = flowhook_map(ECHO, sample)
    assert outcome.code == EXIT_OK, outcome.stdout + outcome.stderr
    variables = outcome.json["output"]["variables"]
    assert variables["body"] == {"user_id": "U9", "text": "hi there"}
    assert variables["raw"] == "user_id=U9&text=hi+there"


def test_raw_sample_with_text_body(flowhook_map: Any) -> None:
    mapping = {
        "kind": "javascript",
        "source": "function map(request) { return { targetUserIds: [request.body.trim()] }; }",
    }
    outcome = flowhook_map(mapping, {"body": " u-text \n"})
    assert outcome.code == EXIT_OK, outcome.stdout + outcome.stderr
    assert outcome.json["output"] == {"targetUserIds": ["u-text"]}


def test_request_object_sample_is_used_as_is(flowhook_map: Any) -> None:
    sample = {
        "method": "POST",
        "path": "/hooks/slack",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "query": {},
        "body": {"user_id": "U1"},
        "rawBody": "user_id=U1",
        "contentType": "application/x-www-form-urlencoded",
        "receivedAt": "2024-01-01T00:00:00.000Z",
    }
    outcome = flowhook_map(ECHO, sample)
    assert outcome.code == EXIT_OK, outcome.stdout + outcome.stderr
    assert outcome.json["output"] == {
        "targetUserIds": ["U1"],
        "variables": {
            "body": {"user_id": "U1"},
            "query": {},
            "contentType": "application/x-www-form-urlencoded",
            "raw": "user_id=U1",
        },
    }


def test_variables_file_applies_defaults(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE, [{"name": "plan", "default": "free"}])
    assert outcome.code == EXIT_OK, outcome.stderr
    assert outcome.json["output"] == {"targetUserIds": ["7"], "variables": {"plan": "free"}}


def test_missing_required_variable_exits_1(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE, [{"name": "email", "required": True}])
    assert outcome.code == EXIT_MAPPING_FAILED
    result = outcome.json
    assert result["ok"] is False
    assert [error["path"] for error in result["validationErrors"]] == ["$.variables.email"]


def test_skipped_request_exits_0(flowhook_map: Any) -> None:
    outcome = flowhook_map({"kind": "javascript", "source": "function map(request) { return null; }"}, RAW_SAMPLE)
    assert outcome.code == EXIT_OK
    assert outcome.json["skipped"] is True


def test_mapping_error_exits_1_with_the_error(flowhook_map: Any) -> None:
    mapping = {
        "kind": "javascript",
        "source": "function map(request) {\n  console.log('here');\n  return request.body.nope.id;\n}",
    }
    outcome = flowhook_map(mapping, RAW_SAMPLE)
    assert outcome.code == EXIT_MAPPING_FAILED
    result = outcome.json
    assert result["error"]["type"] == "TypeError"
    assert result["error"]["line"] == 3
    assert result["logs"] == [{"level": "log", "message": "here"}]


def test_invalid_output_exits_1(flowhook_map: Any) -> None:
    outcome = flowhook_map({"kind": "passthrough"}, {"body": {"targetUserIds": []}})
    assert outcome.code == EXIT_MAPPING_FAILED
    assert [error["path"] for error in outcome.json["validationErrors"]] == ["$.targetUserIds"]


def test_time_limit_option(flowhook_map: Any) -> None:
    outcome = flowhook_map(
        {"kind": "javascript", "source": "function map(request) { for (;;) {} }"},
        RAW_SAMPLE,
        None,
        "--time-limit-ms",
        "200",
    )
    assert outcome.code == EXIT_MAPPING_FAILED
    assert outcome.json["error"]["type"] == "TimeLimitExceeded"
    assert "200 ms" in outcome.json["error"]["message"]


def test_bad_spec_exits_2_with_its_location(flowhook_map: Any) -> None:
    outcome = flowhook_map({"kind": "javascript", "source": "function map(request) {\n  return {;\n}"}, RAW_SAMPLE)
    assert outcome.code == EXIT_BAD_INPUT
    problem = outcome.json
    assert problem["ok"] is False
    assert problem["specError"]["line"] == 2
    assert "SyntaxError" in problem["specError"]["message"]


def test_bad_jmespath_spec_exits_2_with_its_path(flowhook_map: Any) -> None:
    outcome = flowhook_map({"kind": "jmespath", "expression": "body.["}, RAW_SAMPLE)
    assert outcome.code == EXIT_BAD_INPUT
    assert outcome.json["specError"]["path"] == "$.expression"


def test_bad_variable_declaration_exits_2(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE, [{"name": "n", "type": "date"}])
    assert outcome.code == EXIT_BAD_INPUT
    assert outcome.json["specError"]["path"] == "$.variables[0]"


@pytest.mark.parametrize(
    ("mapping", "sample", "variables", "says"),
    [
        ('{"kind": ', RAW_SAMPLE, None, "mapping"),
        (FIELDS, "{not json", None, "sample"),
        (FIELDS, RAW_SAMPLE, "[{", "variables"),
        (FIELDS, '"a string"', None, "sample"),
        (FIELDS, {"headers": {"Content-Type": "application/json"}, "body": "{bad json"}, None, "sample"),
        (FIELDS, {"headers": {"Content-Type": "image/png"}, "body": "xx"}, None, "sample"),
    ],
    ids=[
        "mapping-invalid-json",
        "sample-invalid-json",
        "variables-invalid-json",
        "sample-not-object",
        "sample-body-not-json",
        "sample-unsupported-type",
    ],
)
def test_bad_files_exit_2_with_a_message(
    flowhook_map: Any, mapping: Any, sample: Any, variables: Any, says: str
) -> None:
    outcome = flowhook_map(mapping, sample, variables)
    assert outcome.code == EXIT_BAD_INPUT
    assert outcome.stderr.startswith("flowhook: ") and says in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "sample.json").write_text(json.dumps(RAW_SAMPLE))
    command = [
        sys.executable,
        "-m",
        "flowhook",
        "map",
        "--mapping",
        str(tmp_path / "missing.json"),
        "--sample",
        str(tmp_path / "sample.json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_BAD_INPUT
    assert "missing.json" in done.stderr and "Traceback" not in done.stderr


def test_missing_arguments_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flowhook", "map", "--mapping", "m.json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert "--sample" in done.stderr


def test_variables_file_that_is_not_a_list_exits_2(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE, {"plan": {"default": "free"}})
    assert outcome.code == EXIT_BAD_INPUT
    assert "Traceback" not in outcome.stderr


def test_invalid_time_limit_exits_2(flowhook_map: Any) -> None:
    outcome = flowhook_map(FIELDS, RAW_SAMPLE, None, "--time-limit-ms", "-1")
    assert outcome.code == EXIT_BAD_INPUT
    assert "Traceback" not in outcome.stderr


def test_a_sample_as_the_api_lists_it_is_read_like_a_pasted_one(flowhook_map: Any) -> None:
    """`GET …/samples` items carry `contentType` and a query string; they are raw requests, not SPEC §2 objects."""
    listed = {
        "id": "smp_1",
        "triggerId": "trg_1",
        "source": "captured",
        "method": "POST",
        "path": "/hooks/abc",
        "headers": {"content-type": "application/json", "authorization": "[redacted]"},
        "query": "token=[redacted]&many=a&many=b",
        "contentType": "application/json",
        "body": '{"user_id": "U5"}',
        "createdAt": "2026-01-01T00:00:00.000Z",
    }
    outcome = flowhook_map(ECHO, listed)
    assert outcome.code == EXIT_OK, outcome.stdout + outcome.stderr
    assert outcome.json["output"]["variables"] == {
        "body": {"user_id": "U5"},
        "query": {"token": "[redacted]", "many": ["a", "b"]},
        "contentType": "application/json",
        "raw": '{"user_id": "U5"}',
    }


@pytest.mark.parametrize(
    ("sample", "says"),
    [
        ({"headers": [1, 2], "body": "x"}, "(at $.headers)"),
        ({"headers": {"x-n": None}, "body": "x"}, "(at $.headers.x-n)"),
        ({"method": 5, "body": "x"}, "(at $.method)"),
        ({"method": None, "body": "x"}, "(at $.method)"),
        ({"query": [1, 2], "body": "x"}, "(at $.query)"),
        ({"query": 5, "body": "x"}, "(at $.query)"),
        ({"path": 5, "body": "x"}, "(at $.path)"),
        ({"bogus": 1, "body": "x"}, "(at $.bogus)"),
        ({"contentType": "text/plain; charset=us-ascii", "body": "café"}, "(at $.body)"),
    ],
    ids=[
        "headers-list",
        "header-null",
        "method-number",
        "method-null",
        "query-list",
        "query-number",
        "path-number",
        "unknown-field",
        "body-outside-its-charset",
    ],
)
def test_a_malformed_sample_is_one_line_naming_the_field(flowhook_map: Any, sample: Any, says: str) -> None:
    """As the preview API refuses the same request: never a traceback, never silently coerced."""
    outcome = flowhook_map(ECHO, sample)
    assert (outcome.code, outcome.stdout) == (EXIT_BAD_INPUT, "")
    assert outcome.stderr.startswith("flowhook: sample ") and says in outcome.stderr
    assert outcome.stderr.count("\n") == 1


def test_map_loads_neither_the_http_layer_nor_the_database(tmp_path: Path) -> None:
    """SPEC §1: the mapper is the pure runtime, and `flowhook map` is the mapper alone (the ingress, its web
    framework and the store cost a third of a second to import). The real command, its imports listed by
    -X importtime."""
    (tmp_path / "mapping.json").write_text(json.dumps(ECHO))
    (tmp_path / "sample.json").write_text(json.dumps({**RAW_SAMPLE, "body": {"user_id": "U1"}}))
    command = [sys.executable, "-X", "importtime", "-m", "flowhook", "map", "--mapping", "mapping.json"]
    done = subprocess.run(
        command + ["--sample", "sample.json"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == EXIT_OK, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "mapper.sample" in imported  # the listing is the one asked for
    assert {name.split(".")[0] for name in imported} & {"ingress", "starlette", "sqlalchemy", "store"} == set()


def test_a_sample_file_reaches_the_mapping_as_written(flowhook_map: Any) -> None:
    """Unlike a pasted sample (stored, shown in the editor), a local file's secret headers are not redacted:
    a mapping that reads one can be tried on the value it will see live."""
    mapping = {
        "kind": "jmespath",
        "fields": {"targetUserIds": "body.user.id", "variables.auth": "headers.authorization"},
    }
    outcome = flowhook_map(mapping, {**RAW_SAMPLE, "headers": {"Authorization": "Bearer t0ken"}})
    assert outcome.code == EXIT_OK, outcome.stderr
    assert outcome.json["output"]["variables"] == {"auth": "Bearer t0ken"}


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`flowhook map … | head -c 0`: no BrokenPipeError traceback, the exit status a shell gives SIGPIPE."""
    mapping, sample = tmp_path / "m.json", tmp_path / "s.json"
    mapping.write_text(json.dumps(FIELDS))
    sample.write_text(json.dumps(RAW_SAMPLE))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        command = [sys.executable, "-m", "flowhook", "map", "--mapping", str(mapping), "--sample", str(sample)]
        done = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141
