"""Service settings: constructor arguments for tests, `FLOWHOOK_*` variables for `serve`."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ingress.allowlist import FORWARDING_HEADERS, IpAllowlist
from mapper import Limits

KiB = 1024
MiB = 1024 * KiB
DURABILITY = ("fsync", "os")
# Settings with no meaning below 1: a retention of 0 deleted each sample (and log entry) as it was stored,
# so a paste answered 201 and a capture gave a `sampleId` for a sample that was already gone.
AT_LEAST_ONE = (
    "request_log_retention",
    "sample_retention",
    "sandbox_workers",
    "invocation_retention_days",
    "oauth_failures_per_minute",
    "max_batch",
    "executor_batch",  # 0 claimed nothing: no flow ever ran
    "executor_max_attempts",
)
# Durations with no meaning at 0 or below: every body (or head, or response) timed out at once, or a loop spun
# without a pause.
ABOVE_ZERO = (
    "header_timeout_seconds",
    "body_timeout_seconds",
    "write_timeout_seconds",
    "prune_interval_seconds",
    "executor_poll_seconds",
)


@dataclass(frozen=True)
class Settings:
    """Everything the app factory needs; every field has a working default.

    `admin_token`: when set (FLOWHOOK_ADMIN_TOKEN) it is the admin token and
    none is generated. `public_url`: the base of hook URLs shown by the API
    (default: the URL the API was called on). `trusted_proxies`: peers whose
    forwarding header is believed; `forwarded_header`: which header that is,
    `x-forwarded-for` (the default) or `forwarded` (RFC 7239); only that one
    is read, so name the one your proxies set (or overwrite). `durability`:
    "fsync" (an acknowledged webhook survives a power cut) or "os" (it
    survives a crash or kill -9 of flowhook, not of the machine; no fsync
    wait, so lower latency).
    `marketo_allow_http_callbacks`: call Marketo callback URLs over plain
    http too (tests and local setups; Marketo's own are https).
    `access_token_seconds`: the lifetime of OAuth2 access tokens (0: expired
    at once, for tests). `oauth_failures_per_minute`: failed client
    authentications at `/oauth/token` allowed per client id (per client
    address for unknown ids) before a 429, as a bucket of that many refilled
    at that rate (docs/api-triggers.md). `invocation_retention_days`: how long finished
    invocations and flow instances are kept, and so how long a
    `flowInvocationId` is remembered (docs/flows.md, "Retention").
    """

    data_dir: Path = Path("flowhook-data")
    database: str | None = None
    admin_token: str | None = None
    public_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: str = "x-forwarded-for"
    max_header_bytes: int = 32 * KiB  # the URL and all headers together (431 beyond)
    max_body_bytes: int = 1 * MiB
    header_timeout_seconds: float = 10.0  # a request head must arrive whole within this (ingress.slow_clients)
    write_timeout_seconds: float = 30.0  # a client must take response bytes waiting for it within this (ditto)
    body_timeout_seconds: float = 30.0  # the whole body must arrive within this (webhooks, API, OAuth)
    log_body_bytes: int = 64 * KiB
    request_log_retention: int = 1000
    sample_retention: int = 50
    invocation_retention_days: int = 30
    prune_interval_seconds: float = 60.0
    config_cache_seconds: float = 1.0
    sandbox_workers: int = 2
    mapping_limits: Limits = field(default_factory=Limits)
    max_batch: int = 512
    durability: str = "fsync"
    access_token_seconds: int = 3600
    oauth_failures_per_minute: int = 10
    executor: bool = True  # run the flow executor in this process (`flowhook worker` runs it alone)
    executor_batch: int = 100
    executor_poll_seconds: float = 0.1
    executor_max_attempts: int = 5
    executor_retry_seconds: float = 1.0
    marketo_allow_http_callbacks: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))  # a str from a caller is fine too
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} (FLOWHOOK_{name.upper()}) must be at least 1, not {getattr(self, name)}")
        for name in ABOVE_ZERO:
            if not 0 < getattr(self, name) < math.inf:  # NaN too; inf was a deadline (or pause) never reached
                message = f"must be more than 0 and finite, not {getattr(self, name)}"
                raise ValueError(f"{name} (FLOWHOOK_{name.upper()}) {message}")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):  # a cache or retry pause never over
                raise ValueError(f"{spec.name} (FLOWHOOK_{spec.name.upper()}) must be finite, not {value}")
        if self.durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}")
        object.__setattr__(self, "forwarded_header", self.forwarded_header.lower())
        if self.forwarded_header not in FORWARDING_HEADERS:
            raise ValueError(f"forwarded_header must be one of {', '.join(FORWARDING_HEADERS)}")
        try:
            IpAllowlist(self.trusted_proxies)
        except ValueError as error:
            raise ValueError(f"trusted_proxies (FLOWHOOK_TRUSTED_PROXIES): {error}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from FLOWHOOK_* variables, then `overrides` (e.g. CLI flags) on top."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name == "mapping_limits":
                continue
            raw = environ.get(f"FLOWHOOK_{spec.name.upper()}")
            if raw is not None and raw != "":
                try:
                    values[spec.name] = _parse(spec.name, raw)
                except ValueError:  # int() or float() refused it
                    kind = "an integer" if spec.type == "int" else "a number"
                    raise ValueError(f"FLOWHOOK_{spec.name.upper()} must be {kind}, not {raw!r}") from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        return replace(cls(), **values)

    def to_env(self) -> dict[str, str]:
        """The FLOWHOOK_* variables `from_env` reads back (for uvicorn worker processes)."""
        env: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None or spec.name == "mapping_limits":
                continue
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[f"FLOWHOOK_{spec.name.upper()}"] = text
        return env


def _parse(name: str, raw: str) -> Any:
    default = getattr(Settings(), name)
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw
