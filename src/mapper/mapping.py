"""Compile a mapping spec once; run it on many requests."""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from mapper.answer import encode_produced
from mapper.errors import MappingSpecError
from mapper.javascript import JavaScriptProducer, Payload
from mapper.jmes import ExpressionProducer, FieldsProducer, PassthroughProducer
from mapper.limits import Limits
from mapper.result import MappingResult, Produced, within_depth
from mapper.validation import compiled_schema, schema_errors
from mapper.variables import FlowVariables


class Producer(Protocol):
    kind: str

    def produce(self, request: dict[str, Any]) -> Produced: ...


class Judge:
    """Turns what a mapping produced into a MappingResult: validate, apply variables.

    Kept apart from producing so a sandbox pool can produce in a worker and
    judge in the trusted process.
    """

    def __init__(self, variables: list[dict[str, Any]] | None):
        self._variables = FlowVariables(variables) if variables is not None else None
        self._is_valid = compiled_schema("trigger-request").is_valid

    def judge(self, produced: Produced) -> MappingResult:
        if produced.error is not None:
            return MappingResult(ok=False, error=produced.error, logs=produced.logs)
        output = produced.value
        if output is None:
            return MappingResult(ok=True, skipped=True, logs=produced.logs)
        output = _listed_user_ids(output)
        errors = [] if self._is_valid(output) else schema_errors("trigger-request", output)
        mapped = output
        if not errors and self._variables is not None:
            output = dict(output)  # `apply` replaces its `variables`; `mapped` keeps the mapping's own
            errors = self._variables.apply(output)
        if errors:
            return MappingResult(ok=False, output=output, validation_errors=errors, logs=produced.logs, mapped=mapped)
        return MappingResult(ok=True, output=output, logs=produced.logs, mapped=mapped)


def _listed_user_ids(output: Any) -> Any:
    """A lone string `targetUserIds` as a list of one, whatever the mapping kind.

    The seed asks an event mapping for "a targetUserIds property set to a
    string", so a JavaScript, expression or passthrough mapping that returns
    one is taken at its word, as a fields mapping always was. Two type checks
    on the hot path; the output is copied only when it is rewritten, so a
    mapping that returned part of the request does not change the request.
    """
    if type(output) is dict:
        ids = output.get("targetUserIds")
        if type(ids) is str:
            return {**output, "targetUserIds": [ids]}
    return output


class Mapping:
    """A compiled mapping: produce the output, validate it, apply variables."""

    def __init__(self, spec: dict[str, Any], producer: Producer, judge: Judge, limits: Limits):
        self.spec = spec
        self.kind = producer.kind
        self.limits = limits
        self.judge = judge
        self._producer = producer

    def run(self, request: dict[str, Any]) -> MappingResult:
        """Never raises for anything the mapping does; see MappingResult."""
        started = time.perf_counter()
        produced = self._producer.produce(request)
        if self.kind != "javascript":  # a JavaScript result's depth is checked as its answer is decoded
            produced = within_depth(produced, self.limits.max_depth)
        result = self.judge.judge(produced)
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result

    def answer(self, payload: Payload) -> str:
        """Run on a request given as `request_payload` makes it; the answer text
        (mapper.answer) a sandbox worker sends back unvalidated."""
        if isinstance(self._producer, JavaScriptProducer):
            return self._producer.answer(payload)
        text, raw_body = payload
        request = orjson.loads(text)
        if raw_body is not None:
            request["rawBody"] = raw_body
        return encode_produced(self._producer.produce(request))


def _producer(spec: dict[str, Any], limits: Limits) -> Producer:
    kind = spec["kind"]
    if kind == "javascript":
        return JavaScriptProducer(spec["source"], limits)
    if kind == "jmespath":
        return FieldsProducer(spec["fields"]) if "fields" in spec else ExpressionProducer(spec["expression"])
    return PassthroughProducer()


def compile_mapping(
    spec: dict[str, Any], *, variables: list[dict[str, Any]] | None = None, limits: Limits | None = None
) -> Mapping:
    """Validate `spec` against schemas/mapping.schema.json and compile it.

    Raises MappingSpecError with a path (and line/column for JavaScript).
    """
    if not isinstance(spec, dict):
        raise MappingSpecError("a mapping spec must be a JSON object", path="$")
    problems = schema_errors("mapping", spec)
    if problems:
        raise MappingSpecError(_spec_problem(spec, problems), path=problems[0]["path"])
    limits = limits or Limits()
    judge = Judge(variables)
    return Mapping(spec, _producer(spec, limits), judge, limits)


def _spec_problem(spec: dict[str, Any], problems: list[dict[str, str]]) -> str:
    kind = spec.get("kind")
    if kind not in ("javascript", "jmespath", "passthrough"):
        return f"unknown mapping kind {kind!r}; use javascript, jmespath or passthrough"
    if kind == "jmespath" and ("fields" in spec) == ("expression" in spec):
        return "a jmespath mapping needs exactly one of 'fields' or 'expression'"
    return "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
