"""A sandbox worker process: `python -m mapper.worker CONFIG_JSON`.

Started fresh by `SandboxPool` (never forked from the server, so no secrets
are in its memory), it imports the mapper, confines itself (see
`mapper.confinement`) and only then reads requests. Both pipes carry frames:
a 4-byte big-endian length, then the length of an orjson document, the
document, and a text in UTF-8 (the requests' texts, see `pack_requests`).

    pool -> worker  {"op": "map", "specs": {key: {"spec", "variables"}}, "requests": [[key, size, size | null], ...]}
                    {"op": "probe"}
    worker -> pool  {"op": "hello", "pid", "confinement"}          once, when confined
                    {"results": [answer | {"specError": ...} | {"compiled": true}], "retiring": bool,
                     "slow": [index, ...]}
                    {"probe": {operation: outcome}}

A request entry `[key, null, null]` asks to compile the mapping only (which
runs a JavaScript source's top level once): its result is `{"compiled": true}`
or the spec error.

A request travels as `mapper.javascript.request_payload` makes it, its JSON
text and its body's text in the frame's text rather than as strings escaped
into the document; an answer comes back as the engine's answer text
(`mapper.answer`). The worker neither parses the request nor validates the
output: the pool does that once, in the trusted process. A batch's results
come back in one frame, in request order, with the indexes of those that ran
for `slow_ms` or longer (wall clock), which the pool's fairness needs (see
`SandboxPool`). Compiled mappings are cached by key (a mapping's id and
version) in an LRU.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any, BinaryIO

import orjson

from mapper.confinement import ProcessLimits, apply, probe
from mapper.errors import MappingSpecError
from mapper.javascript import Payload
from mapper.limits import Limits
from mapper.mapping import Mapping, compile_mapping

HEADER = struct.Struct(">I")
COMPILED = {"compiled": True}
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

_WARM_UP_SPEC = {"kind": "javascript", "source": "function map(request) { return {targetUserIds: ['u']}; }"}


def encode_frame(message: Any, text: str = "") -> bytes:
    """`message` as an orjson document, then `text` in UTF-8."""
    document, tail = orjson.dumps(message), text.encode()
    size = HEADER.size + len(document) + len(tail)
    return b"".join((HEADER.pack(size), HEADER.pack(len(document)), document, tail))


def decode_frame(content: bytes) -> tuple[Any, str]:
    """A frame's document and text, from what follows its length."""
    if len(content) < HEADER.size:
        raise ValueError("frame too short")
    (size,) = HEADER.unpack_from(content)
    end = HEADER.size + size
    if end > len(content):
        raise ValueError("document longer than its frame")
    return orjson.loads(content[HEADER.size : end]), str(memoryview(content)[end:], "utf-8")


def pack_requests(requests: Sequence[tuple[str, Payload | None]]) -> tuple[list[list[Any]], str]:
    """A map message's `requests` and its text: each request's JSON text, then
    its body's text if it has one, back to back; the entries give their lengths.
    A payload None (compile only) has no text."""
    entries: list[list[Any]] = []
    texts: list[str] = []
    for key, payload in requests:
        if payload is None:
            entries.append([key, None, None])
            continue
        text, raw_body = payload
        texts.append(text)
        if raw_body is None:
            entries.append([key, len(text), None])
        else:
            texts.append(raw_body)
            entries.append([key, len(text), len(raw_body)])
    return entries, "".join(texts)


def unpack_requests(entries: list[list[Any]], texts: str) -> Iterator[tuple[str, Payload | None]]:
    """Each request's key and payload, as `pack_requests` sent them."""
    offset = 0
    for key, size, body_size in entries:
        if size is None:
            yield key, None
            continue
        text = texts[offset : offset + size]
        offset += size
        raw_body = None
        if body_size is not None:
            raw_body = texts[offset : offset + body_size]
            offset += body_size
        yield key, (text, raw_body)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker is started with (its only command-line argument)."""

    limits: Limits = field(default_factory=Limits)
    process: ProcessLimits = field(default_factory=ProcessLimits)
    cache_size: int = 256
    slow_ms: int = 50

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "limits": self.limits.to_dict(),
                "process": asdict(self.process),
                "cacheSize": self.cache_size,
                "slowMs": self.slow_ms,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data = orjson.loads(text)
        return cls(
            Limits.from_dict(data["limits"]), ProcessLimits(**data["process"]), data["cacheSize"], data["slowMs"]
        )


class MappingCache:
    """Compiled mappings (or their spec errors) by key, least recently used out."""

    def __init__(self, size: int, limits: Limits):
        self._size = size
        self._limits = limits
        self._entries: OrderedDict[str, Mapping | MappingSpecError] = OrderedDict()

    def get(self, key: str, specs: dict[str, dict[str, Any]]) -> Mapping | MappingSpecError:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        source = specs[key]
        try:
            entry = compile_mapping(source["spec"], variables=source["variables"], limits=self._limits)
        except MappingSpecError as error:
            entry = error
        self._entries[key] = entry
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry


class ResidentMemory:
    """The process's resident memory now, from /proc/self/statm: opened once, before
    the worker is confined, so that each reading is one `pread`. (Not the peak in
    `getrusage`, which a process inherits across exec from the server that forked it.)"""

    def __init__(self) -> None:
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)

    def bytes(self) -> int:
        return int(os.pread(self._statm, 128, 0).split()[1]) * PAGE_BYTES


class Worker:
    """The request loop; `retiring` is set when the soft CPU limit is reached,
    or after a batch that took the resident memory to `retire_rss_bytes`
    (where there is a /proc to read it from)."""

    def __init__(self, config: WorkerConfig, reader: BinaryIO, writer: BinaryIO):
        self.cache = MappingCache(config.cache_size, config.limits)
        self.retiring = False
        self._retire_rss_bytes = config.process.retire_rss_bytes
        self._slow_s = config.slow_ms / 1000
        self._memory = ResidentMemory() if os.path.exists("/proc/self/statm") else None
        self._reader = reader
        self._writer = writer

    def serve(self) -> None:
        while not self.retiring:
            frame = self._read()
            if frame is None:
                return
            message, texts = frame
            if message["op"] == "probe":
                self.send({"probe": probe()})
            else:
                results, slow = self._map(unpack_requests(message["requests"], texts), message["specs"])
                if self._memory is not None and not self.retiring:
                    resident = self._memory.bytes()
                    if resident >= self._retire_rss_bytes:
                        print(f"retiring at {resident >> 20} MiB resident", file=sys.stderr, flush=True)
                        self.retiring = True
                self.send({"results": results, "retiring": self.retiring, "slow": slow})

    def retire(self, signum: int, frame: FrameType | None) -> None:
        self.retiring = True

    def send(self, message: Any) -> None:
        self._writer.write(encode_frame(message))
        self._writer.flush()

    def _map(
        self, requests: Iterator[tuple[str, Payload | None]], specs: dict[str, dict[str, Any]]
    ) -> tuple[list[str | dict[str, Any]], list[int]]:
        """Each request's result, and the indexes of the slow ones."""
        results: list[str | dict[str, Any]] = []
        slow: list[int] = []
        clock = time.perf_counter
        for index, (key, payload) in enumerate(requests):
            began = clock()
            results.append(self._run(key, payload, specs))
            if clock() - began >= self._slow_s:
                slow.append(index)
        return results, slow

    def _run(self, key: str, payload: Payload | None, specs: dict[str, dict[str, Any]]) -> str | dict[str, Any]:
        mapping = self.cache.get(key, specs)
        if isinstance(mapping, MappingSpecError):
            return {"specError": mapping.to_dict()}
        if payload is None:
            return COMPILED
        return mapping.answer(payload)

    def _read(self) -> tuple[Any, str] | None:
        header = self._reader.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (length,) = HEADER.unpack(header)
        return decode_frame(self._reader.read(length))


def warm_up(limits: Limits) -> None:
    """Load the prelude, schemas and watchdog thread while files may still be opened."""
    compile_mapping(_WARM_UP_SPEC, limits=limits).run({"body": None})


def main() -> None:
    config = WorkerConfig.from_json(sys.argv[1])
    reader, writer = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must not corrupt the frames
    warm_up(config.limits)
    worker = Worker(config, reader, writer)
    signal.signal(signal.SIGXCPU, worker.retire)
    confinement = apply(config.process)
    worker.send({"op": "hello", "pid": os.getpid(), "confinement": confinement.to_dict()})
    worker.serve()


if __name__ == "__main__":
    main()
