"""Webhook signature verification (SPEC §3): compile a config once, verify each request.

Compiling does everything that does not depend on the request — validating the
config, decoding the secrets, keying one HMAC per secret (or loading each
Ed25519 public key), splitting the template — so `Verifier.verify` only reads
headers and hashes (or checks) the message once per key. A config that cannot
work is refused with `VerificationConfigError`; it is never treated as "no
verification" (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ingress.presets import PRESETS, PUBLIC_KEY_PREFIX, PUBLIC_KEY_PRESETS

SIGNATURE_INVALID: Final = "signature_invalid"
TIMESTAMP_OUT_OF_TOLERANCE: Final = "timestamp_out_of_tolerance"

ALGORITHMS: Final[Mapping[str, Callable[..., Any]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
ED25519: Final = "ed25519"  # a signature by the sender's private key, checked with its public key
ED25519_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
# Signatures are compared as bytes, so hex case does not matter; strict decoders
# (no whitespace, no non-alphabet characters) turn garbage into "not a candidate".
_DECODERS: Final[Mapping[str, Callable[[str], bytes]]] = {
    "hex": binascii.unhexlify,
    "base64": functools.partial(base64.b64decode, validate=True),
}
DIGESTS: Final = tuple(_DECODERS)
SECRET_ENCODINGS: Final = ("utf8", "base64", "whsec", "whpk")
# By whether the algorithm is ed25519 (public keys) or an HMAC (shared secrets): how its keys may be written.
KEY_ENCODINGS: Final = {True: ("base64", "whpk"), False: ("utf8", "base64", "whsec")}
_ENCODING_MISMATCH: Final = {
    True: "an ed25519 public key is written in base64: secretEncoding base64 or whpk",
    False: "secretEncoding whpk names an ed25519 public key; an HMAC needs a shared secret",
}
_KEY_PREFIXES: Final = {"whsec": "whsec_", "whpk": PUBLIC_KEY_PREFIX}  # prefixes a base64 key may carry
DEFAULT_TOLERANCE_SECONDS: Final = 300
MAX_SECRETS: Final = 10
# Signatures tried per request: a rotation sends two or three. Each is checked against every key, and an
# Ed25519 check costs ~60 µs, so a header stuffed with hundreds of them would hold the event loop.
MAX_CANDIDATES: Final = 10
SECRET_MASK: Final = "••••"
_SECRET_HINT_MIN_LENGTH: Final = 16  # shorter secrets are masked entirely

_CONFIG_KEYS: Final = frozenset(
    {
        "secret",
        "secrets",
        "secretEncoding",
        "algorithm",
        "digest",
        "signature",
        "timestamp",
        "template",
        "toleranceSeconds",
    }
)
_PRESET_KEYS: Final = frozenset({"preset", "secret", "secrets", "toleranceSeconds"})
_FIELD_KEYS: Final = frozenset({"header", "parsePrefix", "separator"})
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TEMPLATE_TOKEN: Final = re.compile(r"\[([^\[\]]*)\]")
_TIMESTAMP_TEXT: Final = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class VerificationConfigError(ValueError):
    """A verification config that cannot work; `path` locates the problem (`$.signature.header`).

    Messages never contain a secret's value.
    """

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.message = message
        self.path = path

    def to_dict(self) -> dict[str, str]:
        return {"message": self.message, "path": self.path}


class VerificationFailure(Exception):
    """A request that does not pass verification; `code` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> VerificationFailure:
    return VerificationFailure(SIGNATURE_INVALID, message)


class _Token(enum.Enum):
    PAYLOAD = "payload"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class _HeaderToken:
    name: str


_TemplatePart = bytes | _Token | _HeaderToken


@dataclass(frozen=True, slots=True)
class _HeaderField:
    """Where a value sits in a request: a whole header, or its parts with a prefix."""

    role: str  # "signature" | "timestamp", for messages
    name: str  # lower-cased
    prefix: str | None
    separator: str

    def values(self, headers: Mapping[str, str]) -> list[str]:
        """Every candidate value, in header order; a missing header or no candidate is a failure."""
        raw = headers.get(self.name)
        if raw is None:
            raise _invalid(f"missing {self.role} header {self.name}")
        if self.prefix is None:
            found = [raw.strip()] if raw.strip() else []
        else:
            parts = (part.strip() for part in raw.split(self.separator))
            found = [part[len(self.prefix) :] for part in parts if part.startswith(self.prefix)]
        if not found:
            where = f"with prefix {self.prefix!r} " if self.prefix else ""
            raise _invalid(f"no {self.role} {where}in header {self.name}")
        if len(found) > MAX_CANDIDATES:
            raise _invalid(f"{len(found)} {self.role}s in header {self.name}; at most {MAX_CANDIDATES} are tried")
        return found


class Verifier:
    """A compiled verification config: `verify` raises `VerificationFailure` or returns None.

    Order of checks: signature header, timestamp header (missing or not a
    number of seconds -> signature_invalid, since the signed message cannot be
    rebuilt), signature match (signature_invalid), then tolerance
    (timestamp_out_of_tolerance). The tolerance is checked last so that
    `timestamp_out_of_tolerance` is only reported for authentic requests — a
    replay or a sender's clock skew — and a forgery always reads as
    `signature_invalid`.
    """

    __slots__ = ("_digest", "_keys", "_signature", "_template", "_timestamp", "_tolerance", "headers_to_redact")

    def __init__(
        self,
        *,
        keys: _Keys,
        digest: str,
        signature: _HeaderField,
        timestamp: _HeaderField | None,
        template: tuple[_TemplatePart, ...],
        tolerance_seconds: int,
    ):
        self._keys = keys
        self._digest = digest
        self._signature = signature
        self._timestamp = timestamp
        self._template = template
        self._tolerance = tolerance_seconds
        self.headers_to_redact: frozenset[str] = frozenset(
            field.name for field in (signature, timestamp) if field is not None
        )

    def verify(self, headers: Mapping[str, str], raw_body: bytes, now: float) -> None:
        """Check one request; `headers` has lower-cased names, `now` is Unix seconds."""
        candidates = self._candidates(headers)
        timestamp_text, timestamp = self._read_timestamp(headers)
        message = self._message(headers, raw_body, timestamp_text)
        if not self._keys.match(message, candidates):
            raise _invalid("signature does not match")
        if timestamp is not None:
            self._check_tolerance(timestamp, now)

    def _candidates(self, headers: Mapping[str, str]) -> list[bytes]:
        decode = _DECODERS[self._digest]
        decoded = []
        for value in self._signature.values(headers):
            try:
                decoded.append(decode(value))
            except ValueError:  # binascii.Error is a ValueError
                continue
        if not decoded:
            raise _invalid(f"signature in header {self._signature.name} is not valid {self._digest}")
        return decoded

    def _read_timestamp(self, headers: Mapping[str, str]) -> tuple[str | None, float | None]:
        if self._timestamp is None:
            return None, None
        text = self._timestamp.values(headers)[0]
        if not _TIMESTAMP_TEXT.fullmatch(text):
            raise _invalid(f"timestamp in header {self._timestamp.name} is not a number of seconds")
        return text, float(text)

    def _message(self, headers: Mapping[str, str], raw_body: bytes, timestamp_text: str | None) -> list[bytes]:
        """The signed message as pieces, fed to the HMAC without joining (no copy of the body)."""
        pieces = []
        for part in self._template:
            if isinstance(part, bytes):
                pieces.append(part)
            elif part is _Token.PAYLOAD:
                pieces.append(raw_body)
            elif part is _Token.TIMESTAMP:
                assert timestamp_text is not None  # compile refuses [timestamp] without a timestamp
                pieces.append(_header_bytes(timestamp_text))
            else:
                value = headers.get(part.name)
                if value is None:
                    raise _invalid(f"missing header {part.name} (signed by the template)")
                pieces.append(_header_bytes(value))
        return pieces

    def _check_tolerance(self, timestamp: float, now: float) -> None:
        skew = now - timestamp
        if abs(skew) > self._tolerance:
            direction = "old" if skew > 0 else "in the future"
            raise VerificationFailure(
                TIMESTAMP_OUT_OF_TOLERANCE,
                f"timestamp is {abs(skew):.0f} s {direction}; tolerance is {self._tolerance} s",
            )


class _Keys(Protocol):
    def match(self, message: list[bytes], candidates: list[bytes]) -> bool:
        """Whether any candidate signature is a valid signature of the message (given in pieces)."""
        ...


class _SharedSecrets:
    """HMAC keys: the expected signature is computed and compared in constant time."""

    __slots__ = ("_keyed",)

    def __init__(self, keys: Sequence[bytes], algorithm: str) -> None:
        # Keyed once here; each request copies them, which skips re-hashing the key pads.
        self._keyed = tuple(hmac.new(key, digestmod=ALGORITHMS[algorithm]) for key in keys)

    def match(self, message: list[bytes], candidates: list[bytes]) -> bool:
        for keyed in self._keyed:
            mac = keyed.copy()
            for piece in message:
                mac.update(piece)
            expected = mac.digest()
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                return True
        return False


class _PublicKeys:
    """Ed25519 public keys (Standard Webhooks `v1a`): nothing secret is held or compared."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = tuple(Ed25519PublicKey.from_public_bytes(key) for key in keys)

    def match(self, message: list[bytes], candidates: list[bytes]) -> bool:
        signed = b"".join(message)
        for key in self._keys:
            for candidate in candidates:
                if len(candidate) != ED25519_SIGNATURE_BYTES:
                    continue
                try:
                    key.verify(candidate, signed)
                except InvalidSignature:
                    continue
                return True
        return False


def _header_bytes(value: str) -> bytes:
    """The bytes the sender put on the wire: ASGI servers decode header values as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # a value that did not come from the wire (e.g. a pasted sample)
        return value.encode("utf-8")


def compile_verification(config: Mapping[str, Any] | None) -> Verifier | None:
    """A `Verifier` for `config`, or None when no verification is configured.

    The preset form `{"preset": "stripe", "secret": "…"}` is expanded first.
    Raises `VerificationConfigError` for anything that cannot work.
    """
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise VerificationConfigError("verification must be an object or null")
    full = _expand_preset(config) if "preset" in config else config
    _check_keys(full, _CONFIG_KEYS, "$")
    secret_encoding = _choice(full, "secretEncoding", SECRET_ENCODINGS, "utf8")
    algorithm = _choice(full, "algorithm", (*ALGORITHMS, ED25519), "sha256")
    public = algorithm == ED25519
    if secret_encoding not in KEY_ENCODINGS[public]:
        raise VerificationConfigError(_ENCODING_MISMATCH[public], "$.secretEncoding")
    secrets = _secrets(full)
    if not public:
        for secret, path in secrets:  # anyone can sign with a key everyone may know
            if secret.startswith(PUBLIC_KEY_PREFIX):
                raise VerificationConfigError("a whpk_ public key cannot key an HMAC: it is not a secret", path)
    keys = [(_secret_key(secret, secret_encoding, path), path) for secret, path in secrets]
    timestamp = _header_field(full["timestamp"], "timestamp", "$.timestamp") if "timestamp" in full else None
    return Verifier(
        keys=_public_keys(keys) if public else _SharedSecrets([key for key, _ in keys], algorithm),
        digest=_choice(full, "digest", DIGESTS, "hex"),
        signature=_header_field(_required(full, "signature"), "signature", "$.signature"),
        timestamp=timestamp,
        template=_template(full, has_timestamp=timestamp is not None),
        tolerance_seconds=_tolerance(full, has_timestamp=timestamp is not None),
    )


def _expand_preset(config: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's config with the user's secrets; a sender's public-key scheme when every key is `whpk_`."""
    name = config["preset"]
    if not isinstance(name, str) or name not in PRESETS:
        raise VerificationConfigError(f"unknown preset; known presets: {', '.join(PRESETS)}", "$.preset")
    _check_keys(config, _PRESET_KEYS, "$")
    options = {key: value for key, value in config.items() if key != "preset"}
    given = config.get("secrets") if "secrets" in config else [config.get("secret")]
    public = (
        name in PUBLIC_KEY_PRESETS
        and isinstance(given, list)
        and all(isinstance(key, str) and key.startswith(PUBLIC_KEY_PREFIX) for key in given)
    )
    return {**copy.deepcopy(PUBLIC_KEY_PRESETS[name] if public else PRESETS[name]), **options}


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            raise VerificationConfigError(
                f"unknown key {json.dumps(key)}; allowed: {', '.join(sorted(allowed))}", _child(path, key)
            )


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _required(config: Mapping[str, Any], key: str) -> Any:
    if key not in config:
        raise VerificationConfigError(f"{key} is required", f"$.{key}")
    return config[key]


def _choice(config: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = config.get(key, default)
    if value not in allowed:
        raise VerificationConfigError(f"{key} must be one of {', '.join(allowed)}", f"$.{key}")
    return str(value)


def _secrets(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each configured secret with its path; exactly one of `secret` / `secrets`."""
    if ("secret" in config) == ("secrets" in config):
        raise VerificationConfigError("give exactly one of secret or secrets", "$")
    if "secret" in config:
        found = [(config["secret"], "$.secret")]
    else:
        secrets = config["secrets"]
        if not isinstance(secrets, list) or not 1 <= len(secrets) <= MAX_SECRETS:
            raise VerificationConfigError(f"secrets must be a list of 1 to {MAX_SECRETS} secrets", "$.secrets")
        found = [(secret, f"$.secrets[{index}]") for index, secret in enumerate(secrets)]
    for secret, path in found:
        if not isinstance(secret, str) or not secret:
            raise VerificationConfigError("a secret must be a non-empty string", path)
        if secret != secret.strip():
            raise VerificationConfigError("the secret has leading or trailing whitespace", path)
        if secret.startswith(SECRET_MASK):
            raise VerificationConfigError("the secret is the masked value the API shows; send the real secret", path)
    return found


def _secret_key(secret: str, encoding: str, path: str) -> bytes:
    """The key bytes: the text itself (utf8), or base64 optionally after `whsec_` (whsec) or `whpk_` (whpk)."""
    if encoding == "utf8":
        return secret.encode("utf-8")
    text = secret.removeprefix(_KEY_PREFIXES.get(encoding, ""))
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise VerificationConfigError(f"the secret is not valid {encoding} (base64 key bytes)", path) from None
    if not key:
        raise VerificationConfigError(f"the secret decodes to an empty {encoding} key", path)
    return key


def _public_keys(keys: list[tuple[bytes, str]]) -> _PublicKeys:
    for key, path in keys:
        if len(key) != ED25519_KEY_BYTES:
            message = f"an ed25519 public key is {ED25519_KEY_BYTES} bytes; this one decodes to {len(key)}"
            raise VerificationConfigError(message, path)
    return _PublicKeys([key for key, _ in keys])


def _header_field(value: Any, role: str, path: str) -> _HeaderField:
    if not isinstance(value, Mapping):
        raise VerificationConfigError(f"{role} must be an object with a header", path)
    _check_keys(value, _FIELD_KEYS, path)
    name = value.get("header")
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise VerificationConfigError("header must be an HTTP header name", f"{path}.header")
    prefix = value.get("parsePrefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix or prefix != prefix.strip()):
        raise VerificationConfigError(
            "parsePrefix must be a non-empty string without surrounding spaces", f"{path}.parsePrefix"
        )
    separator = value.get("separator", ",")
    if not isinstance(separator, str) or not separator:
        raise VerificationConfigError("separator must be a non-empty string", f"{path}.separator")
    if "separator" in value and prefix is None:
        raise VerificationConfigError(
            "separator needs parsePrefix (without one the whole header is the value)", f"{path}.separator"
        )
    return _HeaderField(role=role, name=name.lower(), prefix=prefix, separator=separator)


def _template(config: Mapping[str, Any], *, has_timestamp: bool) -> tuple[_TemplatePart, ...]:
    if has_timestamp and "template" not in config:
        raise VerificationConfigError(
            'template is required with a timestamp, e.g. "[timestamp].[payload]"', "$.template"
        )
    template = config.get("template", "[payload]")
    if not isinstance(template, str):
        raise VerificationConfigError("template must be a string", "$.template")
    parts: list[_TemplatePart] = []
    position = 0
    for match in _TEMPLATE_TOKEN.finditer(template):
        parts.extend(_template_literal(template[position : match.start()]))
        parts.append(_template_token(match.group(1)))
        position = match.end()
    parts.extend(_template_literal(template[position:]))
    if _Token.PAYLOAD not in parts:
        raise VerificationConfigError("template must contain [payload]", "$.template")
    if (_Token.TIMESTAMP in parts) != has_timestamp:
        message = (
            "template must contain [timestamp] when a timestamp is configured (unsigned, it prevents no replay)"
            if has_timestamp
            else "template uses [timestamp] but no timestamp header is configured"
        )
        raise VerificationConfigError(message, "$.template")
    return tuple(parts)


def _template_literal(text: str) -> list[_TemplatePart]:
    if "[" in text or "]" in text:
        raise VerificationConfigError("unbalanced [ or ] in template; brackets only appear in tokens", "$.template")
    return [text.encode("utf-8")] if text else []


def _template_token(token: str) -> _TemplatePart:
    if token in ("payload", "timestamp"):
        return _Token(token)
    name = token.removeprefix("header:")
    if name != token and _HEADER_NAME.fullmatch(name):
        return _HeaderToken(name.lower())
    raise VerificationConfigError(
        f"unknown template token [{token}]; known: [payload], [timestamp], [header:NAME]", "$.template"
    )


def _tolerance(config: Mapping[str, Any], *, has_timestamp: bool) -> int:
    if "toleranceSeconds" not in config:
        return DEFAULT_TOLERANCE_SECONDS
    if not has_timestamp:
        raise VerificationConfigError("toleranceSeconds needs a timestamp header", "$.toleranceSeconds")
    value = config["toleranceSeconds"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VerificationConfigError("toleranceSeconds must be a positive integer", "$.toleranceSeconds")
    return value


def public_view(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`config` as the API shows it: every secret masked, at most its last 4 characters kept as a hint."""
    if config is None:
        return None
    view = copy.deepcopy(dict(config))
    if "secret" in view:
        view["secret"] = mask_secret(view["secret"])
    if "secrets" in view:
        secrets = view["secrets"]
        view["secrets"] = [mask_secret(s) for s in secrets] if isinstance(secrets, list) else SECRET_MASK
    return view


def mask_secret(secret: Any) -> str:
    """`"••••" + last 4` for a long secret, `"••••"` alone for a short one (or a non-string)."""
    if isinstance(secret, str) and len(secret) >= _SECRET_HINT_MIN_LENGTH:
        return SECRET_MASK + secret[-4:]
    return SECRET_MASK
