"""Run mappings in a pool of confined sandbox worker processes.

QuickJS has had memory-safety bugs reachable from plain JavaScript, so the
service does not run user JavaScript in its own process. Each slot of the pool
owns one worker process (`mapper.worker`). Requests wait in one queue, fair
across mapping keys (`_FairQueue`), and what queues up while the workers are
busy goes to the least busy one as one batch (up to `batch_max`), so the
pipe's cost is shared. Two batches may be in the pipe at once, so a worker
never waits for the pool to read its answer. A key whose requests run slow
travels alone and never takes the last worker, so one tenant's looping
mapping cannot hold up the others.

A worker that dies (any signal or exit) or overruns its batch's wall-clock
deadline (then SIGKILL) is replaced at once. A failed batch is retried one
request at a time, so only the request that caused the death fails, with
`SandboxCrashed` or `TimeLimitExceeded`; batches that had not started yet are
simply sent again. A failure of the pool's own (an answer it cannot read, a
bug) fails the requests it touches and costs the worker, never the slot.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import heapq
import itertools
import logging
import os
import signal
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mapper
from mapper.answer import MalformedAnswer, decode_answer
from mapper.confinement import Confinement, ProcessLimits
from mapper.errors import MappingSpecError
from mapper.javascript import Payload, UnmappableRequest, request_payload
from mapper.limits import Limits
from mapper.mapping import Judge
from mapper.result import ErrorInfo, MappingResult, error_info
from mapper.worker import COMPILED, HEADER, WorkerConfig, decode_frame, encode_frame, pack_requests

logger = logging.getLogger(__name__)

# The only variables a worker inherits: never FLOWHOOK_* or anything secret.
INHERITED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
PIPELINE_DEPTH = 2
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
RESTART_BACKOFF_S = 1.0
STDERR_CHUNK_BYTES = 4096
STDERR_CHUNKS_LOGGED = 20
PIPE_BYTES = 1024 * 1024


class WorkerDied(Exception):
    """A worker stopped answering; `error` is what its request is told."""

    def __init__(self, error: ErrorInfo):
        super().__init__(error["message"])
        self.error = error


def crash_error(returncode: int | None) -> ErrorInfo:
    if returncode is not None and returncode < 0:
        cause = f"signal {signal.Signals(-returncode).name}"
    else:
        cause = f"exit code {returncode}"
    return error_info("SandboxCrashed", f"the sandbox worker crashed ({cause}); the request was not mapped")


def _stop_signal(returncode: int | None) -> str | None:
    """The name of the signal that ended a worker if it is one that asks a process to stop (sent from
    outside: the pool itself closes stdin or sends SIGKILL), else None."""
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    return signal.Signals(-returncode).name if returncode is not None and -returncode in stops else None


def timeout_error(deadline_s: float) -> ErrorInfo:
    return error_info(
        "TimeLimitExceeded",
        f"the mapping did not finish within {deadline_s * 1000:g} ms (wall clock); "
        "its sandbox worker was stopped and the request was not mapped",
    )


def protocol_error(detail: str) -> ErrorInfo:
    logger.error("sandbox worker broke the protocol: %s", detail)
    return error_info("SandboxCrashed", "the sandbox worker sent an invalid answer; the request was not mapped")


def pool_error() -> ErrorInfo:
    """What a request is told when the pool itself failed on it (logged with its traceback)."""
    return error_info("SandboxCrashed", "the sandbox pool failed on this request; the request was not mapped")


def worker_environment() -> dict[str, str]:
    """A scrubbed environment that still imports this very `mapper` package."""
    environment = {name: os.environ[name] for name in INHERITED_ENVIRONMENT if name in os.environ}
    package_root = str(Path(mapper.__file__).resolve().parent.parent)
    inherited = [str(Path(entry).resolve()) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    environment["PYTHONPATH"] = os.pathsep.join([package_root, *inherited])
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment


@dataclass(frozen=True)
class WorkerState:
    """A slot of the pool: its worker's pid (None while one is being
    started) and its requests sent and not yet answered."""

    pid: int | None
    in_flight: int


@dataclass(slots=True)
class _Key:
    """What the pool keeps of a mapping key: its judge, and whether its last
    request ran slow in the worker (see `_FairQueue.take`). A key is presumed
    slow until its first answer: a mapping that loops must not take every
    worker, or share its batch, before the pool has learnt that it does."""

    judge: Judge
    slow: bool = True


@dataclass(slots=True)
class _Job:
    key: str
    spec: dict[str, Any]
    variables: list[dict[str, Any]] | None
    payload: Payload | None  # None: compile the mapping only (`SandboxPool.check`)
    mapping: _Key
    future: asyncio.Future[MappingResult]
    started: float = field(default_factory=time.perf_counter)
    retried: bool = False  # sent alone after its batch failed; fails for good next time

    def fail(self, error: ErrorInfo) -> None:
        if not self.future.done():
            duration = round((time.perf_counter() - self.started) * 1000, 3)
            self.future.set_result(MappingResult(ok=False, error=error, duration_ms=duration))


class _Process:
    """One running worker process, its pipes and its wall-clock watchdog."""

    def __init__(self, process: asyncio.subprocess.Process, max_frame: int):
        self.process = process
        self.pid = process.pid
        self.confinement: Confinement | None = None
        self.timed_out: ErrorInfo | None = None
        self._max_frame = max_frame
        self._timer: asyncio.TimerHandle | None = None
        assert process.stderr is not None
        self._relay = asyncio.create_task(_relay_stderr(process.pid, process.stderr))

    @classmethod
    async def start(cls, config: WorkerConfig, max_frame: int) -> _Process:
        """A new worker, returned once it has confined itself."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "mapper.worker", config.to_json(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=worker_environment(), cwd="/",
            start_new_session=True,  # only the pool stops it: not Ctrl-C or a signal to the server's process group
        )  # fmt: skip
        _widen_pipes(process)
        worker = cls(process, max_frame)
        try:
            hello = await asyncio.wait_for(worker.receive(), START_TIMEOUT_S)
            worker.confinement = Confinement.from_dict(hello["confinement"])
        except (TimeoutError, WorkerDied, KeyError, TypeError) as error:
            await worker.kill()
            raise RuntimeError(f"sandbox worker did not start: {error}") from None
        return worker

    def arm(self, deadline_s: float) -> None:
        """Kill the worker unless `disarm` comes within `deadline_s`."""
        self._timer = asyncio.get_running_loop().call_later(deadline_s, self._expire, deadline_s)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, deadline_s: float) -> None:
        self.timed_out = timeout_error(deadline_s)
        self._signal_kill()

    def _signal_kill(self) -> None:
        """SIGKILL by pid: `Process.kill()` polls (waitpid) first and can reap
        the child before asyncio's watcher, which then reports exit code 255."""
        if self.process.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def send(self, message: Any, text: str = "") -> None:
        """Write one frame; a dead worker is noticed by the reader (EOF)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(encode_frame(message, text))
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def receive(self) -> Any:
        """The next frame; raises WorkerDied when the worker ends or misbehaves."""
        assert self.process.stdout is not None
        try:
            (length,) = HEADER.unpack(await self.process.stdout.readexactly(HEADER.size))
            if length > self._max_frame:
                raise ValueError(f"frame of {length} bytes")
            message, _ = decode_frame(await self.process.stdout.readexactly(length))
            return message
        except asyncio.IncompleteReadError:
            raise WorkerDied(self.timed_out or crash_error(await self.process.wait())) from None
        except ValueError as error:  # orjson.JSONDecodeError is one
            raise WorkerDied(protocol_error(str(error))) from None

    async def kill(self) -> None:
        self.disarm()
        self._signal_kill()
        await self.process.wait()
        # stderr ends with the worker, unless an unconfined one left a child holding it
        await asyncio.wait([self._relay], timeout=STOP_TIMEOUT_S)
        self._relay.cancel()

    async def stop(self) -> None:
        """Close stdin (the worker exits at EOF); kill it if it lingers."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            pass
        await self.kill()


def _widen_pipes(process: asyncio.subprocess.Process) -> None:
    """Give the request and answer pipes room for a whole batch: with the
    default 64 KiB a batch of ~1 KB requests is written in pieces, each a
    wake-up of the other side."""
    for stream in (process.stdin, process.stdout):
        transport = getattr(stream, "transport", None) or getattr(stream, "_transport", None)
        pipe = transport.get_extra_info("pipe") if transport is not None else None
        if pipe is not None:
            try:
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:  # above /proc/sys/fs/pipe-max-size: keep the default
                pass


async def _relay_stderr(pid: int, stream: asyncio.StreamReader) -> None:
    """Log what a worker prints (crash reports): always drained, logged capped."""
    logged = 0
    while chunk := await stream.read(STDERR_CHUNK_BYTES):
        if logged < STDERR_CHUNKS_LOGGED:
            logger.warning("sandbox worker %d: %s", pid, chunk.decode(errors="replace").rstrip())
            logged += 1


class _Slot:
    """A place in the pool: its worker and the batches in the worker's pipe."""

    def __init__(self) -> None:
        self.batches: deque[list[_Job]] = deque()  # sent and unanswered, oldest first
        self.process: _Process | None = None
        self.reader: asyncio.Task[ErrorInfo | None] | None = None  # the worker's answers, until it ends
        self.wakeup = asyncio.Event()

    @property
    def open(self) -> bool:
        """Whether it takes another batch: its worker lives, has room in its pipe,
        and its last batch is not a slow request (which travels alone: a batch
        behind it would wait for it)."""
        last = self.batches[-1] if self.batches else []
        return (
            self.reader is not None
            and not self.reader.done()
            and len(self.batches) < PIPELINE_DEPTH
            and not (len(last) == 1 and last[0].mapping.slow)
        )

    def holds(self, key: str) -> bool:
        return any(job.key == key for batch in self.batches for job in batch)

    def state(self) -> WorkerState:
        return WorkerState(pid=self.process.pid if self.process else None, in_flight=sum(map(len, self.batches)))


class _FairQueue:
    """Requests waiting for a worker, taken in turns fair across mapping keys.

    Start-time fair queuing, every request counting one turn: a request's turn
    is the later of the turn being served when it arrives and the turn after
    its key's previous waiting request. A key that floods the pool lines its
    requests up one turn apart, and a key that arrives meanwhile is served at
    the current turn, ahead of that backlog, not behind it. Requests sent back
    (a failed batch's, or those a dead worker never started) go first.

    Each key's requests wait in a lane of their own, and a heap orders the
    lanes by their first request, so a key held back costs one look per take
    however many requests it has waiting.
    """

    def __init__(self) -> None:
        self._lanes: dict[str, deque[tuple[int, int, _Job]]] = {}  # per key: (turn, arrival, job), in order
        self._heads: list[tuple[int, int, str]] = []  # (turn, arrival, key) of lanes' first requests
        self._arrivals = itertools.count()
        self._turn = 0  # of the request taken last
        self._front = 0  # below every turn given so far: for requests sent back
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def jobs(self) -> list[_Job]:
        return [job for lane in self._lanes.values() for _, _, job in lane]

    def put(self, jobs: list[_Job], *, first: bool = False) -> None:
        """Queue `jobs`; `first` puts them ahead of everything, in their order."""
        self._length += len(jobs)
        if first:
            self._put_first(jobs)
            return
        lanes, arrivals = self._lanes, self._arrivals
        for job in jobs:
            lane = lanes.get(job.key)  # never empty: a lane goes with its last request
            if lane is not None:
                lane.append((max(self._turn, lane[-1][0] + 1), next(arrivals), job))
            else:
                entry = (self._turn, next(arrivals), job)
                lanes[job.key] = deque((entry,))
                heapq.heappush(self._heads, (entry[0], entry[1], job.key))

    def _put_first(self, jobs: list[_Job]) -> None:
        self._front -= 1
        by_key: dict[str, list[tuple[int, int, _Job]]] = {}
        for job in jobs:
            by_key.setdefault(job.key, []).append((self._front, next(self._arrivals), job))
        for key, entries in by_key.items():
            lane = self._lanes.setdefault(key, deque())
            lane.extendleft(reversed(entries))
            heapq.heappush(self._heads, (self._front, entries[0][1], key))  # the lane's old head goes stale

    def take(self, limit: int, capped: Callable[[str], bool]) -> list[_Job]:
        """Up to `limit` requests, in turn order. A retried request travels alone,
        and so does a slow key's (a batch answers at once, so the requests
        batched with it would wait for it); a slow key that `capped` holds back
        keeps its turn and the others go ahead."""
        batch: list[_Job] = []
        held: list[tuple[int, int, str]] = []
        while self._heads and len(batch) < limit:
            _, arrival, key = heapq.heappop(self._heads)
            lane = self._lanes.get(key)
            if lane is None or lane[0][1] != arrival:  # stale
                continue
            outcome = self._take_run(key, lane, batch, limit, capped)
            if not lane:
                del self._lanes[key]
            elif outcome is _Run.HELD:
                held.append((lane[0][0], lane[0][1], key))
            else:
                heapq.heappush(self._heads, (lane[0][0], lane[0][1], key))
            if outcome is _Run.STOP:
                break
        for head in held:
            heapq.heappush(self._heads, head)
        return batch

    def _take_run(
        self, key: str, lane: deque[tuple[int, int, _Job]], batch: list[_Job], limit: int, capped: Callable[[str], bool]
    ) -> _Run:
        """Take from `lane` into `batch` for as long as its requests come first in turn order
        (with one key waiting, all of them: no heap operation per request)."""
        heads = self._heads
        while lane and len(batch) < limit:
            turn, arrival, job = lane[0]
            if heads and (turn, arrival) > heads[0][:2]:  # another key's turn
                return _Run.NEXT
            if job.future.done():  # the caller gave up
                lane.popleft()
                self._length -= 1
                continue
            if job.mapping.slow and capped(key):
                return _Run.HELD
            alone = job.retried or job.mapping.slow
            if alone and batch:  # it starts the next batch
                return _Run.STOP
            lane.popleft()
            self._length -= 1
            self._turn = max(self._turn, turn)
            batch.append(job)
            if alone:
                return _Run.STOP
        return _Run.NEXT

    def drain(self) -> list[_Job]:
        jobs = self.jobs()
        self._lanes.clear()
        self._heads.clear()
        self._length = 0
        return jobs


class _Run(enum.Enum):
    """How `_FairQueue._take_run` left a key's lane."""

    NEXT = "next"  # another key's turn, or the batch is full
    HELD = "held"  # the key is capped: its lane waits, the others go ahead
    STOP = "stop"  # a request that travels alone ended the batch, or starts the next one


class SandboxPool:
    """Confined worker processes running mappings; see the module docstring.

    `limits` apply to every mapping run in the pool. A batch's wall-clock
    deadline, counted from when the worker starts it, is `request_deadline_ms`
    (default `limits.time_ms`) per request plus `grace_ms`: the engine stops a
    mapping at its time limit first, so the deadline only catches a worker
    stuck beyond that. A key whose last request ran `slow_ms` or longer in its
    worker (or that has not been answered yet) is slow: its requests travel
    alone, nothing waits in the pipe behind them, and they hold at most all
    workers but one (see docs/sandbox-pool.md, "Fairness").
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        limits: Limits | None = None,
        batch_max: int = 64,
        cache_size: int = 256,
        process_limits: ProcessLimits | None = None,
        request_deadline_ms: int | None = None,
        grace_ms: int = 2000,
        slow_ms: int = 50,
    ):
        if workers < 1 or batch_max < 1 or cache_size < 1:
            raise ValueError("workers, batch_max and cache_size must be at least 1")
        self.limits = limits or Limits()
        self.batch_max = batch_max
        self.confinement: Confinement | None = None
        self._config = WorkerConfig(self.limits, process_limits or ProcessLimits(), cache_size, slow_ms)
        self._request_deadline_s = (request_deadline_ms or self.limits.time_ms) / 1000
        self._grace_s = grace_ms / 1000
        self._max_frame = batch_max * (2 * self.limits.max_output_bytes + 1024 * 1024)
        self._slots = [_Slot() for _ in range(workers)]
        self._queue = _FairQueue()
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._cache_size = cache_size
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False  # no new requests
        self._stopping = False  # workers end once idle

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def workers(self) -> list[WorkerState]:
        """One entry per slot, for health checks and metrics."""
        return [slot.state() for slot in self._slots]

    @property
    def queued(self) -> int:
        """Requests waiting for a worker to take them."""
        return len(self._queue)

    async def start(self) -> None:
        """Start every worker and wait until each has confined itself."""
        started = await asyncio.gather(*(self._start_process() for _ in self._slots), return_exceptions=True)
        processes = [process for process in started if isinstance(process, _Process)]
        if len(processes) < len(started):
            await asyncio.gather(*(process.kill() for process in processes))
            raise next(failure for failure in started if isinstance(failure, BaseException))
        for slot, process in zip(self._slots, processes, strict=True):
            slot.process = process
        self.confinement = processes[0].confinement
        if self.confinement and not self.confinement.seccomp:
            logger.warning(
                "sandbox workers run without seccomp (%s); resource limits only", self.confinement.seccomp_detail
            )
        self._tasks = [asyncio.create_task(self._serve(slot)) for slot in self._slots]

    async def close(self) -> None:
        """Finish every request already submitted, then stop the workers."""
        self._closing = True
        in_hand = [job for slot in self._slots for batch in slot.batches for job in batch]
        pending = [job.future for job in (*self._queue.jobs(), *in_hand)]
        await asyncio.gather(*pending, return_exceptions=True)
        self._stopping = True
        for slot in self._slots:
            slot.wakeup.set()
        await asyncio.gather(*self._tasks)

    async def run(
        self, key: str, spec: dict[str, Any], variables: list[dict[str, Any]] | None, request: dict[str, Any]
    ) -> MappingResult:
        """Run mapping `key` (its id and version: `spec` must not change under
        one key) on `request`. Raises MappingSpecError for a bad spec."""
        (future,) = self._submit_all(key, spec, variables, [request])
        return await future

    async def run_many(
        self, key: str, spec: dict[str, Any], variables: list[dict[str, Any]] | None, requests: list[dict[str, Any]]
    ) -> list[MappingResult]:
        """`run` for many requests at once (without a task each), results in order."""
        return [await future for future in self._submit_all(key, spec, variables, requests)]

    async def check(self, key: str, spec: dict[str, Any], variables: list[dict[str, Any]] | None) -> None:
        """Compile mapping `key` in a worker, which runs a JavaScript source's top level once, and map
        nothing. Raises MappingSpecError when it does not compile, or when its worker died or overran the
        deadline compiling it."""
        future = asyncio.get_running_loop().create_future()
        self._submit([_Job(key, spec, variables, None, self._key(key, variables), future)])
        result = await future
        if result.error is not None:
            raise MappingSpecError(f"the mapping could not be checked: {result.error['message']}")

    async def probe(self) -> dict[str, str]:
        """Start one more worker as configured and let it try the operations
        its confinement forbids (see `confinement.probe`)."""
        process = await self._start_process()
        try:
            await process.send({"op": "probe"})
            answer: dict[str, str] = (await process.receive())["probe"]
        finally:
            await process.stop()
        return answer

    def _submit_all(
        self, key: str, spec: dict[str, Any], variables: list[dict[str, Any]] | None, requests: list[dict[str, Any]]
    ) -> list[asyncio.Future[MappingResult]]:
        if self._closing or not self._tasks:
            raise RuntimeError("the sandbox pool is not running")
        create_future = asyncio.get_running_loop().create_future
        mapping = self._key(key, variables)
        futures: list[asyncio.Future[MappingResult]] = []
        jobs: list[_Job] = []
        for request in requests:
            future = create_future()
            futures.append(future)
            try:
                jobs.append(_Job(key, spec, variables, request_payload(request), mapping, future))
            except UnmappableRequest as error:
                future.set_result(MappingResult(ok=False, error=error.info))
        self._submit(jobs)
        return futures

    def _key(self, key: str, variables: list[dict[str, Any]] | None) -> _Key:
        """Validation and variables for mapping `key`, kept as long as its compiled form."""
        mapping = self._keys.get(key)
        if mapping is None:
            mapping = self._keys[key] = _Key(Judge(variables))
            if len(self._keys) > self._cache_size:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return mapping

    def _submit(self, jobs: list[_Job], *, first: bool = False) -> None:
        """Queue `jobs` (`first`: ahead of everything, in their order); the slots
        take them when they next run, with whatever else came in meanwhile."""
        self._queue.put(jobs, first=first)
        self._wake()

    def _wake(self) -> None:
        for slot in self._slots:
            if slot.open:
                slot.wakeup.set()

    def _take(self, slot: _Slot) -> list[_Job]:
        """The slot's next batch if it is one of the least busy that take one: a
        fair share of the queue among those (up to `batch_max`)."""
        ready = [other for other in self._slots if other.open]
        depth = len(slot.batches)
        if slot not in ready or any(len(other.batches) < depth for other in ready):
            return []
        peers = sum(len(other.batches) == depth for other in ready)
        batch = self._queue.take(min(self.batch_max, -(-len(self._queue) // peers)), self._capped)
        if batch and self._queue:
            self._wake()  # the rest may be another slot's
        return batch

    def _capped(self, key: str) -> bool:
        """Whether slow `key` holds every worker but one: the last is kept for the other keys."""
        return sum(slot.holds(key) for slot in self._slots) >= max(1, len(self._slots) - 1)

    async def _start_process(self) -> _Process:
        return await _Process.start(self._config, self._max_frame)

    def _deadline_s(self, batch: list[_Job]) -> float:
        return self._request_deadline_s * len(batch) + self._grace_s

    async def _serve(self, slot: _Slot) -> None:
        """The slot's life: feed its worker, replace it whenever it ends. A failure of the pool's own
        costs the worker and the requests it had in hand, never the slot."""
        while not self._stopping:
            try:
                await self._serve_worker(slot)
            except Exception:
                logger.exception("the sandbox pool failed serving a worker; it is replaced")
                await self._abandon(slot)

    async def _serve_worker(self, slot: _Slot) -> None:
        """One worker's life, from its start to its end."""
        process = slot.process or await self._replace(slot)
        if process is None:
            return
        reader = slot.reader = asyncio.create_task(self._read(slot, process))
        reader.add_done_callback(lambda _: slot.wakeup.set())
        await self._feed(slot, process, reader)
        death = await reader
        slot.process = None
        await process.stop()
        if slot.batches and death is not None:
            self._fail(slot.batches.popleft(), death)
        unsent = [job for batch in slot.batches for job in batch]
        slot.batches.clear()
        self._submit(unsent, first=True)  # not started: send again

    async def _abandon(self, slot: _Slot) -> None:
        """After a failure of the pool's own: stop the slot's worker and fail what it had in hand."""
        process, slot.process = slot.process, None
        if process is not None:
            await process.kill()
        if slot.reader is not None:
            await asyncio.wait([slot.reader])  # it ends at the worker's end, having delivered what it read
        while slot.batches:
            for job in slot.batches.popleft():
                job.fail(pool_error())
        await asyncio.sleep(RESTART_BACKOFF_S)  # a failure that repeats must not spin

    async def _feed(self, slot: _Slot, process: _Process, reader: asyncio.Task[ErrorInfo | None]) -> None:
        """Send batches while the worker lives; at close, stop it once idle."""
        while not reader.done():
            batch = self._take(slot) if self._queue else []
            if batch:
                if not slot.batches:
                    process.arm(self._deadline_s(batch))
                slot.batches.append(batch)
                await process.send(*_map_message(batch))
            elif self._stopping and not slot.batches:
                await process.stop()
            else:
                slot.wakeup.clear()
                await slot.wakeup.wait()

    async def _read(self, slot: _Slot, process: _Process) -> ErrorInfo | None:
        """Deliver answers in order until the worker ends; returns why it ended
        (None: it retired after a clean answer)."""
        try:
            while True:
                answer = await process.receive()
                process.disarm()
                if not slot.batches:
                    raise WorkerDied(protocol_error("an answer nobody asked for"))
                _deliver(slot.batches[0], answer, self.limits)
                slot.batches.popleft()
                if slot.batches:
                    process.arm(self._deadline_s(slot.batches[0]))
                if self._queue:
                    self._wake()  # its room may be the least busy, or free a held key
                slot.wakeup.set()
                if answer.get("retiring"):
                    return None
        except WorkerDied as death:
            await process.kill()
            signalled = _stop_signal(process.process.returncode)
            if signalled and not slot.batches:  # e.g. systemd stopping the whole service: not a crash
                logger.info("sandbox worker %d was stopped by %s while idle", process.pid, signalled)
            elif slot.batches or not self._stopping:
                logger.warning("sandbox worker %d ended: %s", process.pid, death.error["message"])
            return death.error
        except Exception:
            logger.exception("the sandbox pool failed reading worker %d; it is replaced", process.pid)
            await process.kill()
            return pool_error()

    def _fail(self, batch: list[_Job], error: ErrorInfo) -> None:
        """Fail a lone request; retry the requests of a larger batch one by one."""
        if len(batch) == 1:
            if error["type"] == "TimeLimitExceeded":  # the wall-clock deadline: as slow as can be
                batch[0].mapping.slow = True
            batch[0].fail(error)
            return
        for job in batch:
            job.retried = True
        self._submit(batch, first=True)

    async def _replace(self, slot: _Slot) -> _Process | None:
        try:
            slot.process = await self._start_process()
        except (RuntimeError, OSError) as error:  # OSError: no process could be made (EMFILE, EAGAIN)
            logger.error("%s; retrying in %g s", error, RESTART_BACKOFF_S)
            if not any(other.process for other in self._slots):  # no worker left to wait for
                not_started = error_info(
                    "SandboxCrashed", "the sandbox worker could not start; the request was not mapped"
                )
                for job in self._queue.drain():
                    job.fail(not_started)
            await asyncio.sleep(RESTART_BACKOFF_S)
        return slot.process


def _map_message(batch: list[_Job]) -> tuple[dict[str, Any], str]:
    specs = {job.key: {"spec": job.spec, "variables": job.variables} for job in batch}
    requests, text = pack_requests([(job.key, job.payload) for job in batch])
    return {"op": "map", "specs": specs, "requests": requests}, text


def _deliver(batch: list[_Job], answer: Any, limits: Limits) -> None:
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(batch):
        raise WorkerDied(protocol_error("wrong number of results"))
    slow = answer.get("slow") or ()
    for index, (job, result) in enumerate(zip(batch, results, strict=True)):
        job.mapping.slow = index in slow
        if job.future.done():
            continue
        try:
            outcome = _outcome(result, job, limits)
        except WorkerDied:
            raise
        except Exception:  # a failure of the pool's own: this request's, not the worker's
            logger.exception("the sandbox pool failed reading an answer for mapping %s", job.key)
            outcome = MappingResult(ok=False, error=pool_error())
        if isinstance(outcome, MappingSpecError):
            job.future.set_exception(outcome)
        else:
            outcome.duration_ms = (time.perf_counter() - job.started) * 1000
            job.future.set_result(outcome)


def _outcome(data: Any, job: _Job, limits: Limits) -> MappingResult | MappingSpecError:
    """A worker's answer, decoded and judged here: the worker's own word on
    validity is never taken, so a subverted worker cannot pass off bad output."""
    if isinstance(data, str):
        try:
            return job.mapping.judge.judge(decode_answer(data, limits))
        except MalformedAnswer as error:
            raise WorkerDied(protocol_error(str(error))) from None
    if data == COMPILED and job.payload is None:
        return MappingResult(ok=True)
    try:
        return MappingSpecError(**data["specError"])
    except (KeyError, TypeError):
        raise WorkerDied(protocol_error("malformed result")) from None
