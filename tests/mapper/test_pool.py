"""The sandbox worker pool: real worker processes, real signals, real seccomp."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import mapper.pool
from mapper import Limits, MappingSpecError, compile_mapping, make_request
from mapper.confinement import GiB, ProcessLimits
from mapper.javascript import request_payload
from mapper.mapping import Judge
from mapper.pool import INHERITED_ENVIRONMENT, SandboxPool, worker_environment
from mapper.result import MappingResult, Produced
from mapper.worker import (
    HEADER,
    MappingCache,
    Worker,
    WorkerConfig,
    decode_frame,
    encode_frame,
    pack_requests,
    unpack_requests,
)

pytestmark = pytest.mark.anyio

JAVASCRIPT = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  const {targetUserIds, variables} = request.body;\n"
    "  console.log('mapping', variables.n);\n"
    "  return {targetUserIds, variables: {n: variables.n}};\n"
    "}",
}
LOOP_FOREVER = {"kind": "javascript", "source": "function map(request) { while (true) {} }"}
KINDS: dict[str, dict[str, Any]] = {
    "javascript": JAVASCRIPT,
    "fields": {
        "kind": "jmespath",
        "fields": {"targetUserIds": "body.targetUserIds", "variables.n": "body.variables.n"},
    },
    "expression": {
        "kind": "jmespath",
        "expression": "{targetUserIds: body.targetUserIds, variables: {n: body.variables.n}}",
    },
    "passthrough": {"kind": "passthrough"},
}


def request(n: int = 1, user: str = "u1") -> dict[str, Any]:
    """A webhook whose body already is a trigger request (for passthrough)."""
    body = orjson.dumps({"targetUserIds": [user], "variables": {"n": n}})
    return make_request("POST", "/hooks/h", {"Content-Type": "application/json"}, "", body, "application/json")


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    """Two workers whose engine lets a runaway loop run long enough to be killed."""
    async with SandboxPool(2, limits=Limits(time_ms=30_000)) as pool:
        yield pool


async def in_flight(pool: SandboxPool, *, not_pid: int | None = None) -> int:
    """The pid of a worker (other than `not_pid`) holding a request, once one has been sent."""
    while True:
        busy = [worker.pid for worker in pool.workers if worker.in_flight and worker.pid not in (None, not_pid)]
        if busy:
            return busy[0]
        await asyncio.sleep(0.005)


async def replaced(pool: SandboxPool, old_pids: list[int | None]) -> list[int | None]:
    """The pids once every slot runs a worker that is not one of `old_pids`'s dead ones."""
    while True:
        pids = [worker.pid for worker in pool.workers]
        if None not in pids and pids != old_pids:
            return pids
        await asyncio.sleep(0.005)


# ---- confinement ---------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp is Linux-only")
async def test_workers_report_seccomp_and_rlimits(pool: SandboxPool) -> None:
    assert pool.confinement is not None
    assert pool.confinement.seccomp, pool.confinement.seccomp_detail
    assert pool.confinement.rlimits["RLIMIT_AS"] == [1024**3, 1024**3]
    assert pool.confinement.rlimits["RLIMIT_FSIZE"] == [0, 0]
    assert pool.confinement.rlimits["RLIMIT_CORE"] == [0, 0]
    assert pool.confinement.rlimits["RLIMIT_NOFILE"][1] <= 64


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp is Linux-only")
async def test_a_worker_cannot_exec_spawn_connect_write_or_signal(pool: SandboxPool) -> None:
    outcomes = await pool.probe()
    assert outcomes == {
        "exec": "blocked",
        "spawn": "blocked",
        "socket": "blocked",
        "write": "blocked",
        "signal": "blocked",
        "read": "allowed",
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_workers_are_fresh_programs_without_the_servers_secrets(pool: SandboxPool) -> None:
    for worker in pool.workers:
        command = Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:4] == [b"-P", b"-m", b"mapper.worker"]
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert names <= {*INHERITED_ENVIRONMENT, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}


def test_the_worker_environment_drops_everything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_ADMIN_TOKEN", "secret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key")
    environment = worker_environment()
    assert "FLOWHOOK_ADMIN_TOKEN" not in environment
    assert "secret" not in " ".join(environment.values())


def test_without_libseccomp_a_worker_keeps_its_rlimits() -> None:
    script = (
        "import sys, json\n"
        "sys.modules['pyseccomp'] = None  # as if libseccomp were not installed\n"
        "from mapper.confinement import ProcessLimits, apply\n"
        "print(json.dumps(apply(ProcessLimits()).to_dict()))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    confinement = orjson.loads(completed.stdout)
    assert confinement["seccomp"] is False
    assert "libseccomp unavailable" in confinement["seccomp_detail"]
    assert confinement["rlimits"]["RLIMIT_FSIZE"] == [0, 0]


# ---- mapping -------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_maps_as_it_does_in_process(pool: SandboxPool, kind: str) -> None:
    spec = KINDS[kind]
    result = await pool.run(f"{kind}:1", spec, None, request(7))
    expected = compile_mapping(spec).run(request(7))
    assert result.ok, result.error
    assert {**result.to_dict(), "durationMs": 0} == {**expected.to_dict(), "durationMs": 0}


async def test_concurrent_requests_come_back_in_order(pool: SandboxPool) -> None:
    results = await pool.run_many("js:1", JAVASCRIPT, None, [request(n, f"user-{n}") for n in range(300)])
    assert [result.output for result in results] == [
        {"targetUserIds": [f"user-{n}"], "variables": {"n": n}} for n in range(300)
    ]
    assert results[299].logs == [{"level": "log", "message": "mapping 299"}]


async def test_concurrent_run_calls_each_get_their_own_result(pool: SandboxPool) -> None:
    results = await asyncio.gather(*(pool.run("js:1", JAVASCRIPT, None, request(n)) for n in range(50)))
    assert [result.output["variables"]["n"] for result in results if result.output] == list(range(50))


async def test_variables_and_validation_apply_in_the_worker(pool: SandboxPool) -> None:
    variables = [{"name": "n", "type": "number"}, {"name": "plan", "type": "string", "default": "free"}]
    result = await pool.run("js:vars", JAVASCRIPT, variables, request(3))
    assert result.output == {"targetUserIds": ["u1"], "variables": {"n": 3, "plan": "free"}}
    invalid = await pool.run(
        "js:invalid", {"kind": "javascript", "source": "function map() { return {x: 1}; }"}, None, request()
    )
    assert not invalid.ok
    assert {error["path"] for error in invalid.validation_errors} >= {"$"}


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "javascript", "source": "function map(r) { return {targetUserIds: [r['raw' + 'Body']]}; }"},
        {"kind": "jmespath", "fields": {"targetUserIds": "rawBody"}},
    ],
    ids=["javascript", "jmespath"],
)
async def test_the_mapping_reads_the_raw_body_through_the_pool(pool: SandboxPool, spec: dict[str, Any]) -> None:
    raw = 'Grüße, "\\u00e9" \U0001f600'
    the_request = make_request("POST", "/hooks/h", {}, "", raw.encode(), "text/plain")
    result = await pool.run(f"raw:{spec['kind']}", spec, None, the_request)
    assert result.output == {"targetUserIds": [raw]}, result.to_dict()


async def test_a_user_error_comes_back_with_its_line(pool: SandboxPool) -> None:
    spec = {"kind": "javascript", "source": "function map(r) {\n  return r.nothing.here;\n}"}
    result = await pool.run("throws:1", spec, None, request())
    assert result.error is not None
    assert (result.error["type"], result.error["line"]) == ("TypeError", 2)


async def test_logged_errors_come_back_by_name_and_message(pool: SandboxPool) -> None:
    source = (
        "function map(r) {\n"
        "  console.error(new TypeError('t'), {e: new Error('e')});\n"
        "  return {targetUserIds: ['u1']};\n"
        "}"
    )
    result = await pool.run("logs-error:1", {"kind": "javascript", "source": source}, None, request())
    assert result.logs == [{"level": "error", "message": 'TypeError: t {"e":"Error: e"}'}]


async def test_a_bad_spec_raises_mapping_spec_error_every_time(pool: SandboxPool) -> None:
    spec = {"kind": "javascript", "source": "function map(r) {\n  return {;\n}"}
    for _ in range(2):
        with pytest.raises(MappingSpecError) as raised:
            await pool.run("syntax:1", spec, None, request())
        assert raised.value.line == 2


async def test_the_engine_time_limit_holds_without_costing_the_worker() -> None:
    async with SandboxPool(1, limits=Limits(time_ms=100)) as pool:
        pid = pool.workers[0].pid
        result = await pool.run("loop:1", LOOP_FOREVER, None, request())
        assert result.error is not None and result.error["type"] == "TimeLimitExceeded"
        assert pool.workers[0].pid == pid
        assert (await pool.run("js:1", JAVASCRIPT, None, request())).ok


def test_the_worker_cache_compiles_a_key_once_and_forgets_the_oldest() -> None:
    cache = MappingCache(2, Limits())
    specs = {key: {"spec": JAVASCRIPT, "variables": None} for key in ("a", "b", "c")}
    first = cache.get("a", specs)
    assert cache.get("a", {}) is first  # cached: the spec is not needed again
    cache.get("b", specs)
    cache.get("c", specs)
    with pytest.raises(KeyError):
        cache.get("a", {})
    bad = {"bad": {"spec": {"kind": "javascript", "source": "nope("}, "variables": None}}
    assert isinstance(cache.get("bad", bad), MappingSpecError)
    assert isinstance(cache.get("bad", {}), MappingSpecError)


def test_a_map_frame_carries_each_request_text_exactly() -> None:
    requests = [
        ("a", ('{"rawBody":null,"n":1}', "plain")),
        ("b", ('{"body":"é"}', None)),
        ("a", ('{"rawBody":null}', 'Grüße 😀 \\u00e9 "quoted"\r\n')),
        ("c", ("{}", "")),
    ]
    entries, text = pack_requests(requests)
    frame = encode_frame({"op": "map", "requests": entries}, text)
    (length,) = HEADER.unpack(frame[: HEADER.size])
    message, texts = decode_frame(frame[HEADER.size :])
    assert length == len(frame) - HEADER.size
    assert list(unpack_requests(message["requests"], texts)) == requests


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x00\x00\x00\x09{}"], ids=["empty", "short", "truncated"])
def test_a_malformed_frame_is_a_value_error(content: bytes) -> None:
    with pytest.raises(ValueError):
        decode_frame(content)


# ---- crash containment ---------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL], ids=["SIGSEGV", "SIGKILL"])
async def test_a_worker_killed_mid_request_fails_only_that_request(pool: SandboxPool, signum: int) -> None:
    running = asyncio.create_task(pool.run("loop:1", LOOP_FOREVER, None, request()))
    victim = await in_flight(pool)
    survivor = next(worker.pid for worker in pool.workers if worker.pid != victim)
    before = [worker.pid for worker in pool.workers]
    os.kill(victim, signum)
    result = await running
    assert not result.ok and result.error is not None
    assert result.error["type"] == "SandboxCrashed"
    name = signal.Signals(signum).name
    assert result.error["message"] == f"the sandbox worker crashed (signal {name}); the request was not mapped"
    pids = await replaced(pool, before)
    assert victim not in pids and survivor in pids
    assert (await pool.run("js:1", JAVASCRIPT, None, request(5))).output == {
        "targetUserIds": ["u1"],
        "variables": {"n": 5},
    }


async def test_an_idle_worker_that_dies_is_replaced_at_once(pool: SandboxPool) -> None:
    before = [worker.pid for worker in pool.workers]
    assert before[0] is not None
    os.kill(before[0], signal.SIGKILL)
    pids = await replaced(pool, before)
    assert before[0] not in pids
    results = await pool.run_many("js:1", JAVASCRIPT, None, [request(n) for n in range(10)])
    assert all(result.ok for result in results)


async def test_a_crash_fails_only_the_culprit_of_a_batch() -> None:
    async with SandboxPool(1, limits=Limits(time_ms=30_000)) as pool:
        await pool.check("loop:1", LOOP_FOREVER, None)  # answered fast: the keys are not presumed slow
        await pool.check("js:1", JAVASCRIPT, None)
        # Submitted in one turn of the loop, the three travel as one batch.
        culprit = asyncio.create_task(pool.run("loop:1", LOOP_FOREVER, None, request()))
        bystanders = [asyncio.create_task(pool.run("js:1", JAVASCRIPT, None, request(n))) for n in (1, 2)]
        await asyncio.sleep(0)
        assert pool.queued == 3
        first = await in_flight(pool)
        os.kill(first, signal.SIGSEGV)
        # Retried alone (and first), the culprit takes down a second worker.
        os.kill(await in_flight(pool, not_pid=first), signal.SIGSEGV)
        result = await culprit
        assert result.error is not None and result.error["type"] == "SandboxCrashed"
        assert [(await task).output for task in bystanders] == [
            {"targetUserIds": ["u1"], "variables": {"n": n}} for n in (1, 2)
        ]


async def test_the_wall_clock_watchdog_kills_a_stuck_worker() -> None:
    # The engine would allow 30 s; the pool's deadline is 100 ms + 100 ms grace.
    pool = SandboxPool(1, limits=Limits(time_ms=30_000), request_deadline_ms=100, grace_ms=100)
    async with pool:
        pid = pool.workers[0].pid
        stuck, fine = await asyncio.gather(
            pool.run("loop:1", LOOP_FOREVER, None, request()),
            pool.run("js:1", JAVASCRIPT, None, request(2)),
        )
        assert stuck.error is not None and stuck.error["type"] == "TimeLimitExceeded"
        assert "wall clock" in stuck.error["message"]
        assert fine.ok
        assert (await replaced(pool, [pid]))[0] != pid
        assert (await pool.run("js:1", JAVASCRIPT, None, request(3))).ok


async def test_a_worker_past_its_cpu_budget_retires_between_batches() -> None:
    spin = {
        "kind": "javascript",
        "source": (
            "function map(r) { const end = Date.now() + 300; while (Date.now() < end) {} "
            "return {targetUserIds: ['u']}; }"
        ),
    }
    process_limits = ProcessLimits(cpu_seconds=1)
    async with SandboxPool(1, limits=Limits(time_ms=5_000), process_limits=process_limits) as pool:
        first = pool.workers[0].pid
        for _ in range(20):
            assert (await pool.run("spin:1", spin, None, request())).ok
            if pool.workers[0].pid != first:
                break
        assert (await replaced(pool, [first]))[0] != first
        assert (await pool.run("js:1", JAVASCRIPT, None, request())).ok


# ---- lifecycle -----------------------------------------------------------


async def test_close_finishes_what_was_submitted_then_refuses_more() -> None:
    pool = SandboxPool(1)
    await pool.start()
    pending = [asyncio.create_task(pool.run("js:1", JAVASCRIPT, None, request(n))) for n in range(20)]
    await asyncio.sleep(0)
    await pool.close()
    assert all([(await task).ok for task in pending])
    assert [worker.pid for worker in pool.workers] == [None]
    with pytest.raises(RuntimeError):
        await pool.run("js:1", JAVASCRIPT, None, request())


HALF_AN_EMOJI = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  const cut = request.body.text.slice(0, 5);  // ends inside the emoji's surrogate pair\n"
    "  console.log(cut);\n"
    "  if (request.body.fail) throw new Error(cut);\n"
    "  return {targetUserIds: ['u1'], variables: {cut}};\n"
    "}",
}


@pytest.mark.parametrize("fail", [False, True])
async def test_half_an_emoji_is_a_replacement_character_not_a_crash(pool: SandboxPool, fail: bool) -> None:
    """JSON.stringify writes a lone surrogate as an escape that orjson refuses: the answer read as malformed
    cost the worker and gave the sender a 503 sandbox_crashed, whoever sent such text."""
    body = orjson.dumps({"text": "Hey 😀 there", "fail": fail})
    the_request = make_request("POST", "/hooks/h", {"Content-Type": "application/json"}, "", body, "application/json")
    pids = [worker.pid for worker in pool.workers]
    result = await pool.run("half-an-emoji", HALF_AN_EMOJI, None, the_request)
    assert result.logs == [{"level": "log", "message": "Hey \ufffd"}]
    if fail:
        assert result.error is not None and result.error["message"] == "Hey \ufffd"
    else:
        assert result.ok and result.output == {"targetUserIds": ["u1"], "variables": {"cut": "Hey \ufffd"}}
    assert [worker.pid for worker in pool.workers] == pids


STOPPED_BY_ITS_GROUP = """
import asyncio, signal
from mapper import make_request
from mapper.pool import SandboxPool

SPEC = {"kind": "javascript", "source": "function map(r) { return {targetUserIds: [r.body.user]}; }"}

async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with SandboxPool(2) as pool:
        print("ready", flush=True)
        await stop.wait()  # as uvicorn does: finish the requests in hand, then close
        webhook = make_request("POST", "/hooks/h", {}, "", b'{"user": "u7"}', "application/json")
        print((await pool.run("js:1", SPEC, None, webhook)).output, flush=True)

asyncio.run(main())
"""


def test_a_signal_to_the_servers_process_group_leaves_the_workers_to_the_pool() -> None:
    """Ctrl-C in a terminal or `kill -- -PGID` stopping `flowhook serve` killed every idle worker first:
    requests still in hand got sandbox_crashed and the log said "sandbox worker crashed" for each."""
    server = subprocess.Popen(
        [sys.executable, "-c", STOPPED_BY_ITS_GROUP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a server started from a shell has
    )
    assert server.stdout is not None and server.stdout.readline() == "ready\n"
    os.killpg(server.pid, signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert out == "{'targetUserIds': ['u7']}\n"
    assert "crashed" not in err and "Traceback" not in err


async def test_an_idle_worker_stopped_by_sigterm_is_not_reported_as_a_crash(
    pool: SandboxPool, caplog: pytest.LogCaptureFixture
) -> None:
    """systemd stops a service by sending SIGTERM to each of its processes, the workers included."""
    before = [worker.pid for worker in pool.workers]
    assert before[0] is not None
    with caplog.at_level("INFO", logger="mapper.pool"):
        os.kill(before[0], signal.SIGTERM)
        await replaced(pool, before)
    assert [record.getMessage() for record in caplog.records if record.name == "mapper.pool"] == [
        f"sandbox worker {before[0]} was stopped by SIGTERM while idle"
    ]


# ---- what the pool itself could trip on ------------------------------------

DEEP_OUTPUT = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  let nested = [];\n"
    "  for (let i = 0; i < request.body.levels; i++) nested = [nested];\n"
    "  return {targetUserIds: ['u1'], variables: {nested}};\n"
    "}",
}


def levels_request(levels: int) -> dict[str, Any]:
    body = orjson.dumps({"levels": levels})
    return make_request("POST", "/hooks/h", {"Content-Type": "application/json"}, "", body, "application/json")


@pytest.mark.parametrize("levels", [65, 300, 1100, 3000])
async def test_a_result_nested_too_deep_is_invalid_output_and_costs_nothing(levels: int) -> None:
    """An answer deeper than orjson reads (1,024 levels) was parsed by the standard library, whose
    RecursionError killed the slot's task with its requests unanswered: every later JavaScript request of
    the slot hung, the preview worker's too."""
    async with SandboxPool(1) as pool:
        pid = pool.workers[0].pid
        for _ in range(2):  # a guard: the slot's death left the request waiting for ever
            result = await asyncio.wait_for(pool.run("deep:1", DEEP_OUTPUT, None, levels_request(levels)), 60)
            assert result.error is not None and result.error["type"] == "InvalidOutput", result.to_dict()
            assert result.error["message"] == "the result is nested deeper than 64 levels"
        assert (await pool.run("js:1", JAVASCRIPT, None, request(2))).ok
        assert pool.workers[0].pid == pid


async def test_an_answer_the_pool_fails_to_judge_fails_that_request_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    judge = Judge.judge

    def failing_judge(self: Judge, produced: Produced) -> MappingResult:
        if produced.value is not None and produced.value["variables"]["n"] == 2:
            raise RuntimeError("a bug of the pool's own")
        return judge(self, produced)

    monkeypatch.setattr(Judge, "judge", failing_judge)
    async with SandboxPool(1) as pool:
        pid = pool.workers[0].pid
        batch = pool.run_many("js:1", JAVASCRIPT, None, [request(n) for n in (1, 2, 3)])
        results = await asyncio.wait_for(batch, 60)  # a guard: the slot's death left them waiting for ever
        assert [result.ok for result in results] == [True, False, True]
        assert results[1].error is not None and results[1].error["type"] == "SandboxCrashed"
        assert (await pool.run("js:1", JAVASCRIPT, None, request(4))).ok
        assert pool.workers[0].pid == pid


async def test_a_failure_of_the_pool_itself_costs_the_worker_not_the_slot(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    map_message = mapper.pool._map_message

    def failing_map_message(batch: list[Any]) -> tuple[dict[str, Any], str]:
        if any(job.key == "poison:1" for job in batch):
            raise RuntimeError("a bug of the pool's own")
        return map_message(batch)

    monkeypatch.setattr(mapper.pool, "_map_message", failing_map_message)
    monkeypatch.setattr(mapper.pool, "RESTART_BACKOFF_S", 0)
    async with SandboxPool(1) as pool:
        pid = pool.workers[0].pid
        poisoned = await asyncio.wait_for(pool.run("poison:1", JAVASCRIPT, None, request()), 60)  # a guard
        assert poisoned.error is not None and poisoned.error["type"] == "SandboxCrashed"
        assert (await pool.run("js:1", JAVASCRIPT, None, request(2))).ok
        assert pool.workers[0].pid != pid
    assert "the sandbox pool failed serving a worker" in caplog.text


async def test_a_worker_that_cannot_be_made_fails_the_waiting_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError starting a process (no file descriptors left) killed the slot's task, and every request
    queued on the slot waited for ever."""
    monkeypatch.setattr(mapper.pool, "RESTART_BACKOFF_S", 0)
    async with SandboxPool(1) as pool:
        start, gate = pool._start_process, asyncio.Event()
        failures = [OSError(24, "Too many open files")]

        async def failing_start() -> Any:
            if failures:
                await gate.wait()
                raise failures.pop()
            return await start()

        monkeypatch.setattr(pool, "_start_process", failing_start)
        os.kill(pool.workers[0].pid or 0, signal.SIGKILL)
        while pool.workers[0].pid is not None:
            await asyncio.sleep(0.005)
        waiting = asyncio.create_task(pool.run("js:1", JAVASCRIPT, None, request()))
        await asyncio.sleep(0)
        gate.set()
        result = await asyncio.wait_for(waiting, 30)
        assert result.error == {
            "type": "SandboxCrashed",
            "message": "the sandbox worker could not start; the request was not mapped",
            "line": None,
            "column": None,
            "stack": "",
        }
        assert (await pool.run("js:1", JAVASCRIPT, None, request())).ok


TOO_DEEP_FOR_THE_ENGINE = 254  # levels of body: the request's JSON writer takes 253 (mapper.javascript)


async def test_a_body_too_deep_for_the_engine_fails_that_request_alone(pool: SandboxPool) -> None:
    """orjson's TypeError writing the request was a 500 for the webhook's sender."""
    requests = [
        make_request("POST", "/hooks/h", {}, "", b"[" * levels + b"]" * levels, "application/json")
        for levels in (TOO_DEEP_FOR_THE_ENGINE - 1, TOO_DEEP_FOR_THE_ENGINE, 1000)
    ]
    spec = {"kind": "javascript", "source": "function map(request) { return {targetUserIds: ['u1']}; }"}
    fine, too_deep, far_too_deep = await pool.run_many("flat:1", spec, None, requests)
    assert fine.ok, fine.to_dict()
    for refused in (too_deep, far_too_deep):
        assert refused.error is not None and refused.error["type"] == "InvalidRequest"
        assert refused.error["message"] == (
            "the request body is nested deeper than 253 levels, too deep for a JavaScript mapping"
        )


async def test_mappings_that_fill_their_memory_do_not_fill_the_worker() -> None:
    """A runtime that hit its memory limit kept its full heap while its mapping stayed cached, and a runtime
    dropped while the watchdog thread held its slot was freed on that thread, where QuickJS frees nothing:
    some twenty such mappings filled a worker's address space, and innocent mappings failed with
    MemoryLimitExceeded or SandboxCrashed."""
    hog = "function map(r) { const keep = []; for (;;) { const a = {pad: [1, 2, 3]}; a.b = {a}; keep.push(a); } }"
    process_limits = ProcessLimits(address_space_bytes=GiB // 2, retire_rss_bytes=GiB)
    async with SandboxPool(1, process_limits=process_limits) as pool:
        pid = pool.workers[0].pid
        for n in range(16):
            result = await pool.run(f"hog:{n}", {"kind": "javascript", "source": f"{hog} // {n}"}, None, request())
            assert result.error is not None and result.error["type"] == "MemoryLimitExceeded", (n, result.error)
        assert (await pool.run("js:1", JAVASCRIPT, None, request())).ok
        assert pool.workers[0].pid == pid


def test_a_worker_retires_once_its_resident_memory_reaches_the_mark() -> None:
    """Each cached runtime keeps its last call's garbage until its next collection: many of them would fill
    the address space, where an allocation fails in whichever mapping asks next."""
    entries, text = pack_requests([("js:1", request_payload(request()))])
    frame = encode_frame(
        {"op": "map", "specs": {"js:1": {"spec": JAVASCRIPT, "variables": None}}, "requests": entries}, text
    )
    for mark, retiring in ((1 << 50, False), (1, True)):
        writer = io.BytesIO()
        worker = Worker(WorkerConfig(process=ProcessLimits(retire_rss_bytes=mark)), io.BytesIO(frame), writer)
        worker.serve()
        answer, _ = decode_frame(writer.getvalue()[HEADER.size :])
        assert answer["retiring"] is retiring and len(answer["results"]) == 1


async def test_a_worker_does_not_take_the_servers_memory_peak_for_its_own() -> None:
    """The peak in `getrusage` survives exec: read there, every worker of a server that had ever been over
    the mark would retire after every batch."""
    ballast = b"x" * (200 << 20)  # this process's peak passes the mark; a fresh worker stays far below it
    del ballast
    async with SandboxPool(1, process_limits=ProcessLimits(retire_rss_bytes=150 << 20)) as pool:
        pid = pool.workers[0].pid
        for n in range(3):
            assert (await pool.run("js:1", JAVASCRIPT, None, request(n))).ok
        assert pool.workers[0].pid == pid


async def test_a_retiring_worker_is_replaced_and_nothing_is_lost() -> None:
    async with SandboxPool(1, process_limits=ProcessLimits(retire_rss_bytes=1)) as pool:
        first = pool.workers[0].pid
        results = await pool.run_many("js:1", JAVASCRIPT, None, [request(n) for n in range(20)])
        assert all(result.ok for result in results)
        assert (await asyncio.wait_for(replaced(pool, [first]), 60))[0] != first  # a guard: it never retired
        assert (await pool.run("js:1", JAVASCRIPT, None, request())).ok


# ---- checking a spec in a worker ---------------------------------------------


async def test_check_compiles_in_a_worker_and_maps_nothing(pool: SandboxPool) -> None:
    await pool.check("check:ok", JAVASCRIPT, None)
    for source, message, line in (
        ("function map(r) {\n  return {;\n}", "SyntaxError", 2),
        ("const x = 1;\nthrow new Error('boom');\nfunction map(r) {}", "top-level code threw Error: boom", 2),
        ("function transform(r) {}", "the mapping does not define a function map(request)", None),
        ("}); let count = 0; (function () {\nfunction map(r) {}", "SyntaxError", 1),
    ):
        with pytest.raises(MappingSpecError) as raised:
            await pool.check(f"check:{source}", {"kind": "javascript", "source": source}, None)
        assert message in raised.value.message and raised.value.line == line, raised.value.to_dict()
    with pytest.raises(MappingSpecError) as raised:
        await pool.check("check:kind", {"kind": "javascript"}, None)
    assert raised.value.path == "$"


async def test_check_holds_top_level_code_to_the_time_limit() -> None:
    async with SandboxPool(1, limits=Limits(time_ms=100)) as pool:
        looping = {"kind": "javascript", "source": "while (true) {}\nfunction map(r) {}"}
        with pytest.raises(MappingSpecError) as raised:
            await pool.check("check:loop", looping, None)
        assert raised.value.message == "top-level code: the mapping exceeded the time limit of 100 ms"
        await pool.check("check:ok", JAVASCRIPT, None)
