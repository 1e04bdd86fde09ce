"""JavaScript mappings in an embedded QuickJS sandbox.

Each mapping compiles once per thread into its own QuickJS runtime (contexts
are not safe to share between threads), with the prelude's lockdown applied
before any user code runs. Every call re-runs the source's top level through
a factory function, so nothing a call does is seen by the next one; frozen
intrinsics and a frozen global object close the remaining channels (the
prelude compiles a source into the factory only once it has parsed as one
function body on its own, so none can close the factory early). A context
that hit a limit is thrown away and rebuilt on the next call.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import orjson
import quickjs

from mapper.answer import PENDING, decode_answer, described, failure_answer
from mapper.errors import MappingSpecError
from mapper.limits import Limits
from mapper.resources import prelude_source
from mapper.result import ErrorInfo, Produced, error_info
from mapper.stacktrace import LINE_OFFSET
from mapper.watchdog import WATCHDOG

# The Function constructor puts a body's first line on engine line 3.
_FUNCTION_HEADER_LINES = 2
# Without these words a source cannot reach a Promise once the prelude has
# removed the Promise-making globals, so its calls skip draining the job queue.
_SCHEDULES_JOBS = re.compile(r"async|await|import|Promise|queueMicrotask|fromAsync|AsyncDisposableStack")
# A throw statement cannot be written without this word (escaped keywords are
# syntax errors, and code from strings is disabled).
_THROW_STATEMENT = re.compile(r"\bthrow\b")
_LIMITS = ("MemoryLimitExceeded", "TimeLimitExceeded", "StackLimitExceeded")
# Answers of a call the engine stopped at a limit that the prelude caught: the
# runtime goes, as after one the host caught, rather than keep a heap that may be
# full (the garbage of a call stays until the runtime's next collection).
_SPENT = tuple(f'[2,{{"type":"{name}"' for name in _LIMITS)
# The request's JSON writer (orjson) stops at 255 levels: the request object holds the body.
MAX_BODY_DEPTH = 253

Payload = tuple[str, str | None]
"""A request as the engine takes it: its JSON text, with `rawBody` null when
it is a string, and that string on its own (see `request_payload`)."""


def _function_body(source: str) -> str:
    padding = "\n" * (LINE_OFFSET - _FUNCTION_HEADER_LINES - 1)
    return f'"use strict";{padding}\n{source}\n;return typeof map === "function" ? map : undefined;'


def _compile_error(source: str, data: dict[str, Any]) -> MappingSpecError:
    """The engine's syntax error, placed in the user's source.

    An open bracket (or one closed too often) is only noticed at the wrapper
    code after the source, where the engine names a token the user never
    wrote; such an error is reported at the end of the source instead.
    """
    info = described(data)
    lines = source.split("\n")
    if info["line"] is not None and info["line"] > len(lines):
        message = (
            f"{data['type']}: the brackets do not balance: "
            "the source ends with a (, [ or { still open, or a } closes one too many"
        )
        return MappingSpecError(message, line=len(lines), column=len(lines[-1]) + 1)
    return MappingSpecError(f"{data['type']}: {data['message']}", line=info["line"], column=info["column"])


class LimitExceeded(Exception):
    """The engine stopped a call for a limit; the context must be discarded."""

    def __init__(self, info: ErrorInfo):
        super().__init__(info["message"])
        self.info = info


def memory_message(limits: Limits) -> str:
    return f"the mapping exceeded the memory limit of {limits.memory_bytes / (1024 * 1024):g} MiB"


def time_message(limits: Limits) -> str:
    return f"the mapping exceeded the time limit of {limits.time_ms} ms"


def _limit_error(exception: Exception, limits: Limits, *, overdue: bool) -> ErrorInfo:
    text = str(exception)
    if overdue or "interrupted" in text:
        return error_info("TimeLimitExceeded", time_message(limits))
    if "out of memory" in text or text.strip() == "null":
        return error_info("MemoryLimitExceeded", memory_message(limits))
    if isinstance(exception, quickjs.StackOverflow) or "stack overflow" in text:
        return error_info("StackLimitExceeded", "the mapping exceeded the stack limit (too much recursion)")
    first_line = text.splitlines()[0] if text else "unknown engine error"
    return error_info("InternalError", f"the JavaScript engine failed: {first_line}")


class Engine:
    """One QuickJS runtime holding one compiled mapping."""

    def __init__(self, source: str, limits: Limits):
        self.limits = limits
        self.may_schedule_jobs = bool(_SCHEDULES_JOBS.search(source))
        self.context = quickjs.Context()
        self.context.set_memory_limit(limits.memory_bytes)
        self.context.set_max_stack_size(limits.stack_bytes)
        self.time_limit = limits.time_ms / 1000
        self.context.set_time_limit(self.time_limit)
        config = orjson.dumps(
            {
                "maxLogLines": limits.max_log_lines,
                "maxOutputChars": limits.max_output_bytes,
                "synchronous": not self.may_schedule_jobs,
                "throwsValues": throws_values(source, self.may_schedule_jobs),
                "memoryMessage": memory_message(limits),
                "timeMessage": time_message(limits),
            }
        ).decode()
        install = self.context.eval(prelude_source())
        installed = install(_function_body(source), config)
        if isinstance(installed, str):
            raise _compile_error(source, orjson.loads(installed))
        self.host = installed
        self.watch = WATCHDOG.slot(self, limits.memory_bytes)

    def set_memory_limit(self, limit: int) -> None:
        """The watchdog's lever on an overdue call (see mapper.watchdog)."""
        self.context.set_memory_limit(limit)

    def check(self) -> None:
        """Run the top level once: it must define map() and not throw."""
        problem = self.call(2, ("", None))
        if problem:
            data = orjson.loads(problem)
            info = described(data)
            if data["type"] == "SpecError":
                message = data["message"]
            elif data["type"] in _LIMITS:  # as when the host stops it (JavaScriptProducer)
                message = f"top-level code: {data['message']}"
            else:
                message = f"top-level code threw {data['type']}: {data['message']}"
            raise MappingSpecError(message, line=info["line"], column=info["column"])

    def call(self, op: int, payload: Payload) -> str:
        """One host call under the wall-clock watchdog; raises LimitExceeded."""
        deadline = self.watch.deadline = time.monotonic() + self.time_limit
        try:
            answer: str = self.host(op, *payload)
            if self.may_schedule_jobs or answer == PENDING:
                self._drain(deadline)
                if answer == PENDING:
                    answer = self.host(1, "")
        except (quickjs.JSException, quickjs.StackOverflow) as exception:
            self.watch.clear()
            raise LimitExceeded(_limit_error(exception, self.limits, overdue=time.monotonic() >= deadline)) from None
        if self.watch.clear():
            raise LimitExceeded(_limit_error(RuntimeError("interrupted"), self.limits, overdue=True))
        return answer

    def _drain(self, deadline: float) -> None:
        """Run queued Promise jobs; each gets only what is left of the budget."""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise quickjs.JSException("InternalError: interrupted")
                self.context.set_time_limit(remaining)
                if not self.context.execute_pending_job():
                    return
        finally:
            self.context.set_time_limit(self.time_limit)


class JavaScriptProducer:
    """Runs `map(request)` from user source; thread-safe, one engine per thread."""

    kind = "javascript"

    def __init__(self, source: str, limits: Limits):
        self.source = source
        self.limits = limits
        self._local = threading.local()
        engine = Engine(source, limits)
        try:
            engine.check()
        except LimitExceeded as exceeded:
            raise MappingSpecError(f"top-level code: {exceeded.info['message']}") from None
        self._local.engine = engine

    def _engine(self) -> Engine:
        engine: Engine | None = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = Engine(self.source, self.limits)
        return engine

    def answer(self, payload: Payload) -> str:
        """Run map() on a request payload; the answer text (see mapper.answer)."""
        try:
            answer = self._engine().call(0, payload)
        except LimitExceeded as exceeded:
            self._local.engine = None
            return failure_answer(exceeded.info)
        if answer.startswith(_SPENT):
            self._local.engine = None
        return answer

    def produce(self, request: dict[str, Any]) -> Produced:
        try:
            payload = request_payload(request)
        except UnmappableRequest as error:
            return Produced(error=error.info)
        return decode_answer(self.answer(payload), self.limits)


def throws_values(source: str, may_schedule_jobs: bool) -> bool:
    """Whether a source can throw a value of its own choosing, null above all.

    The engine throws null when it runs out of memory while building an error,
    so a null is reported as the memory limit unless the mapping could have
    thrown it: with a throw statement, by rejecting a Promise, or by a
    generator's throw() (which the prelude notes when it runs).
    """
    return may_schedule_jobs or bool(_THROW_STATEMENT.search(source))


class UnmappableRequest(ValueError):
    """A request that cannot be handed to the engine; `info` is the error its result reports."""

    def __init__(self, info: ErrorInfo):
        super().__init__(info["message"])
        self.info = info


def request_payload(request: dict[str, Any]) -> Payload:
    """The engine's form of `request`: the body's text travels beside the
    JSON rather than escaped into it (and parsed) a second time. Raises
    UnmappableRequest for a body nested deeper than `MAX_BODY_DEPTH`."""
    raw_body = request.get("rawBody")
    try:
        if not isinstance(raw_body, str):
            return orjson.dumps(request).decode(), None
        return orjson.dumps({**request, "rawBody": None}).decode(), raw_body
    except orjson.JSONEncodeError as error:
        raise UnmappableRequest(_unmappable(str(error))) from None


def _unmappable(reason: str) -> ErrorInfo:
    if "Recursion limit" in reason:
        message = f"the request body is nested deeper than {MAX_BODY_DEPTH} levels, too deep for a JavaScript mapping"
    else:
        message = f"the request cannot be handed to a JavaScript mapping: {reason}"
    return error_info("InvalidRequest", message)
