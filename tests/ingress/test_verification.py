"""The verification engine: config compilation, the verify checks, public_view.

Signatures here are computed with `hmac` from the documented scheme; the
presets are checked against the senders' own libraries in test_presets.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import jsonschema
import pytest

from ingress.verification import (
    SIGNATURE_INVALID,
    TIMESTAMP_OUT_OF_TOLERANCE,
    VerificationConfigError,
    VerificationFailure,
    Verifier,
    compile_verification,
    public_view,
)
from mapper.resources import load_schema

SECRET = "s3cr3t-for-tests-0123456789"
OTHER_SECRET = "another-secret-abcdefghijkl"
BODY = b'{"customer": {"id": "u1"}, "note": "caf\xc3\xa9"}'
NOW = 1_700_000_000
TS = str(NOW)


def sign(secret: bytes | str, message: bytes, *, algorithm: str = "sha256", digest: str = "hex") -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, message, getattr(hashlib, algorithm)).digest()
    return mac.hex() if digest == "hex" else base64.b64encode(mac).decode()


def body_config(**overrides: Any) -> dict[str, Any]:
    """A GitHub-like config: `X-Sig: v1=<hex>` over the body."""
    return {"secret": SECRET, "signature": {"header": "X-Sig", "parsePrefix": "v1="}, **overrides}


def timed_config(**overrides: Any) -> dict[str, Any]:
    """The SPEC's example: Stripe-style, timestamp and signatures in one header."""
    return {
        "secret": SECRET,
        "algorithm": "sha256",
        "digest": "hex",
        "signature": {"header": "X-Signature", "parsePrefix": "v1="},
        "timestamp": {"header": "X-Signature", "parsePrefix": "t="},
        "template": "[timestamp].[payload]",
        "toleranceSeconds": 300,
        **overrides,
    }


def compiled(config: dict[str, Any]) -> Verifier:
    verifier = compile_verification(config)
    assert verifier is not None
    return verifier


def failure(verifier: Verifier, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> VerificationFailure:
    with pytest.raises(VerificationFailure) as caught:
        verifier.verify(headers, body, now)
    return caught.value


def timed_header(timestamp: str = TS, body: bytes = BODY, secret: str = SECRET) -> str:
    return f"t={timestamp},v1={sign(secret, f'{timestamp}.'.encode() + body)}"


# --- compile -------------------------------------------------------------------------


def test_no_config_means_no_verification() -> None:
    assert compile_verification(None) is None


# --- signatures over the body --------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("digest", ["hex", "base64"])
def test_algorithms_and_digests(algorithm: str, digest: str) -> None:
    verifier = compiled(body_config(algorithm=algorithm, digest=digest))
    good = sign(SECRET, BODY, algorithm=algorithm, digest=digest)
    verifier.verify({"x-sig": f"v1={good}"}, BODY, NOW)
    other_algorithm = "sha1" if algorithm != "sha1" else "sha256"
    wrong = sign(SECRET, BODY, algorithm=other_algorithm, digest=digest)
    assert failure(verifier, {"x-sig": f"v1={wrong}"}).code == SIGNATURE_INVALID


def test_hex_is_compared_as_bytes_so_case_does_not_matter() -> None:
    verifier = compiled(body_config())
    verifier.verify({"x-sig": f"v1={sign(SECRET, BODY).upper()}"}, BODY, NOW)


def test_a_hex_signature_does_not_pass_a_base64_config() -> None:
    verifier = compiled(body_config(digest="base64"))
    assert failure(verifier, {"x-sig": f"v1={sign(SECRET, BODY)}"}).code == SIGNATURE_INVALID


def test_tampered_body_is_rejected() -> None:
    verifier = compiled(body_config())
    header = {"x-sig": f"v1={sign(SECRET, BODY)}"}
    for tampered in (BODY + b" ", BODY.replace(b"u1", b"u2"), b""):
        assert failure(verifier, header, tampered).message == "signature does not match"


def test_the_payload_is_the_raw_bytes_exactly() -> None:
    """Not re-encoded JSON, not decoded text: invalid UTF-8 and whitespace are signed as sent."""
    body = b'{ "a" :\t1 }\r\n\xff\xfe'
    compiled(body_config()).verify({"x-sig": f"v1={sign(SECRET, body)}"}, body, NOW)


def test_wrong_secret_is_rejected() -> None:
    verifier = compiled(body_config())
    assert failure(verifier, {"x-sig": f"v1={sign(OTHER_SECRET, BODY)}"}).code == SIGNATURE_INVALID


def test_missing_signature_header() -> None:
    found = failure(compiled(body_config()), {"content-type": "application/json"})
    assert (found.code, found.message) == (SIGNATURE_INVALID, "missing signature header x-sig")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no signature with prefix 'v1=' in header x-sig"),
        ("v0=abcd,sha256=abcd", "no signature with prefix 'v1=' in header x-sig"),
        ("v1=not-hex-at-all", "signature in header x-sig is not valid hex"),
        ("v1=abc", "signature in header x-sig is not valid hex"),  # odd length
        ("v1=ab cd", "signature in header x-sig is not valid hex"),
        ("v1=ünïcode", "signature in header x-sig is not valid hex"),
    ],
)
def test_malformed_signature_header(value: str, message: str) -> None:
    found = failure(compiled(body_config()), {"x-sig": value})
    assert (found.code, found.message) == (SIGNATURE_INVALID, message)


def test_malformed_base64_signature() -> None:
    found = failure(compiled(body_config(digest="base64")), {"x-sig": "v1=***="})
    assert found.message == "signature in header x-sig is not valid base64"


def test_without_parse_prefix_the_whole_header_is_the_signature() -> None:
    verifier = compiled({"secret": SECRET, "digest": "base64", "signature": {"header": "X-Sig"}})
    verifier.verify({"x-sig": f"  {sign(SECRET, BODY, digest='base64')} "}, BODY, NOW)
    two = f"{sign(SECRET, BODY, digest='base64')},{sign(SECRET, BODY, digest='base64')}"
    assert failure(verifier, {"x-sig": two}).code == SIGNATURE_INVALID


def test_parts_are_split_on_commas_with_surrounding_spaces() -> None:
    verifier = compiled(body_config())
    verifier.verify({"x-sig": f"v0=zz , v1={sign(SECRET, BODY)} ,other"}, BODY, NOW)


def test_a_custom_separator() -> None:
    """Standard Webhooks' shape: space-separated `v1,<base64>` pairs."""
    config = body_config(digest="base64", signature={"header": "X-Sig", "parsePrefix": "v1,", "separator": " "})
    good = sign(SECRET, BODY, digest="base64")
    compiled(config).verify({"x-sig": f"v1a,AAAA  v1,{sign(OTHER_SECRET, BODY, digest='base64')} v1,{good}"}, BODY, NOW)


# --- rotation ------------------------------------------------------------------------


def test_any_candidate_in_the_header_may_match() -> None:
    header = f"v1={sign(OTHER_SECRET, BODY)},v1={sign(SECRET, BODY)}"
    compiled(body_config()).verify({"x-sig": header}, BODY, NOW)


def test_any_configured_secret_may_match() -> None:
    config = {"secrets": [OTHER_SECRET, SECRET], "signature": {"header": "X-Sig", "parsePrefix": "v1="}}
    verifier = compiled(config)
    for secret in (SECRET, OTHER_SECRET):
        verifier.verify({"x-sig": f"v1={sign(secret, BODY)}"}, BODY, NOW)
    assert failure(verifier, {"x-sig": f"v1={sign('third-secret', BODY)}"}).code == SIGNATURE_INVALID


# --- timestamps ----------------------------------------------------------------------


def test_timestamped_signature_passes_within_tolerance() -> None:
    verifier = compiled(timed_config())
    for now in (NOW, NOW + 300, NOW - 300):
        verifier.verify({"x-signature": timed_header()}, BODY, now)


@pytest.mark.parametrize(("now", "words"), [(NOW + 301, "301 s old"), (NOW - 301, "301 s in the future")])
def test_stale_and_future_timestamps(now: int, words: str) -> None:
    found = failure(compiled(timed_config()), {"x-signature": timed_header()}, now=now)
    assert found.code == TIMESTAMP_OUT_OF_TOLERANCE
    assert found.message == f"timestamp is {words}; tolerance is 300 s"


def test_tolerance_is_configurable() -> None:
    verifier = compiled(timed_config(toleranceSeconds=10))
    verifier.verify({"x-signature": timed_header()}, BODY, NOW + 10)
    assert failure(verifier, {"x-signature": timed_header()}, now=NOW + 11).code == TIMESTAMP_OUT_OF_TOLERANCE


def test_default_tolerance_is_300_seconds() -> None:
    config = timed_config()
    del config["toleranceSeconds"]
    verifier = compiled(config)
    verifier.verify({"x-signature": timed_header()}, BODY, NOW + 300)
    assert failure(verifier, {"x-signature": timed_header()}, now=NOW + 301).code == TIMESTAMP_OUT_OF_TOLERANCE


def test_the_timestamp_is_signed_so_it_cannot_be_refreshed() -> None:
    signed_long_ago = f"v1={sign(SECRET, f'{NOW - 3600}.'.encode() + BODY)}"
    found = failure(compiled(timed_config()), {"x-signature": f"t={NOW},{signed_long_ago}"})
    assert found.code == SIGNATURE_INVALID


def test_a_forged_stale_request_reads_as_signature_invalid() -> None:
    """Tolerance is checked after the signature: timestamp_out_of_tolerance means authentic but late."""
    found = failure(compiled(timed_config()), {"x-signature": timed_header(secret=OTHER_SECRET)}, now=NOW + 3600)
    assert found.code == SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing signature header x-signature"),
        ("v1=" + "ab" * 32, "no timestamp with prefix 't=' in header x-signature"),
        ("t=yesterday,v1=" + "ab" * 32, "timestamp in header x-signature is not a number of seconds"),
        ("t=-5,v1=" + "ab" * 32, "timestamp in header x-signature is not a number of seconds"),
        ("t=1e9,v1=" + "ab" * 32, "timestamp in header x-signature is not a number of seconds"),
    ],
)
def test_missing_or_unparseable_timestamp_is_signature_invalid(header: str | None, message: str) -> None:
    headers = {} if header is None else {"x-signature": header}
    found = failure(compiled(timed_config()), headers)
    assert (found.code, found.message) == (SIGNATURE_INVALID, message)


def test_first_timestamp_part_is_the_signed_one() -> None:
    """As Stripe's own library does: an appended `t=` cannot replace the signed one."""
    verifier = compiled(timed_config())
    verifier.verify({"x-signature": f"{timed_header()},t={NOW + 9999}"}, BODY, NOW)


def test_timestamp_in_its_own_header_and_a_literal_template() -> None:
    config = {
        "secret": SECRET,
        "signature": {"header": "X-Sig", "parsePrefix": "v0="},
        "timestamp": {"header": "X-Time"},
        "template": "v0:[timestamp]:[payload]",
    }
    signature = sign(SECRET, f"v0:{TS}:".encode() + BODY)
    verifier = compiled(config)
    verifier.verify({"x-sig": f"v0={signature}", "x-time": f" {TS} "}, BODY, NOW)
    assert failure(verifier, {"x-sig": f"v0={signature}"}).message == "missing timestamp header x-time"


def test_fractional_timestamps_are_read_as_seconds() -> None:
    config = timed_config()
    verifier = compiled(config)
    verifier.verify({"x-signature": timed_header(timestamp=f"{NOW}.250")}, BODY, NOW + 300.25)


# --- [header:NAME] and secret encodings ----------------------------------------------


def test_header_token_signs_another_header() -> None:
    config = {
        "secret": SECRET,
        "signature": {"header": "X-Sig"},
        "timestamp": {"header": "X-Time"},
        "template": "[header:X-Message-Id].[timestamp].[payload]",
    }
    message = f"msg_1.{TS}.".encode() + BODY
    headers = {"x-sig": sign(SECRET, message), "x-time": TS, "x-message-id": "msg_1"}
    verifier = compiled(config)
    verifier.verify(headers, BODY, NOW)
    assert failure(verifier, {**headers, "x-message-id": "msg_2"}).message == "signature does not match"
    del headers["x-message-id"]
    assert failure(verifier, headers).message == "missing header x-message-id (signed by the template)"


def test_header_values_are_signed_as_their_wire_bytes() -> None:
    """ASGI gives header values decoded as latin-1; the HMAC sees the original bytes."""
    wire = "ünïcødé".encode()
    config = body_config(template="[header:x-id]:[payload]")
    headers = {"x-sig": f"v1={sign(SECRET, wire + b':' + BODY)}", "x-id": wire.decode("latin-1")}
    compiled(config).verify(headers, BODY, NOW)


BINARY_KEY = b"\x00\x01binary key\xff"


@pytest.mark.parametrize(
    ("encoding", "secret"),
    [
        ("base64", base64.b64encode(BINARY_KEY).decode()),
        ("whsec", "whsec_" + base64.b64encode(BINARY_KEY).decode()),
        ("whsec", base64.b64encode(BINARY_KEY).decode()),  # prefix optional
        ("whsec", "whsec_" + base64.b64encode(BINARY_KEY).decode().rstrip("=")),  # unpadded
    ],
)
def test_secret_encodings_decode_to_key_bytes(encoding: str, secret: str) -> None:
    verifier = compiled(body_config(secret=secret, secretEncoding=encoding))
    verifier.verify({"x-sig": f"v1={sign(BINARY_KEY, BODY)}"}, BODY, NOW)
    assert failure(verifier, {"x-sig": f"v1={sign(secret, BODY)}"}).code == SIGNATURE_INVALID


def test_utf8_is_the_default_secret_encoding() -> None:
    secret = "whsec_" + base64.b64encode(b"key").decode()
    compiled(body_config(secret=secret)).verify({"x-sig": f"v1={sign(secret, BODY)}"}, BODY, NOW)


def test_headers_to_redact_are_the_signature_and_timestamp_headers() -> None:
    assert compiled(
        timed_config(timestamp={"header": "X-Time"}, template="[timestamp][payload]")
    ).headers_to_redact == {
        "x-signature",
        "x-time",
    }
    assert compiled(body_config()).headers_to_redact == {"x-sig"}


# --- invalid configs are refused (and the schema agrees) -----------------------------

VALID_CONFIGS: list[dict[str, Any]] = [
    body_config(),
    timed_config(),
    body_config(secrets=[SECRET, OTHER_SECRET], secret=None),
    {"secret": "x", "signature": {"header": "X-Sig"}, "algorithm": "sha512", "digest": "base64"},
    body_config(secret="whsec_" + base64.b64encode(b"k" * 24).decode(), secretEncoding="whsec"),
    body_config(template="[header:X-Id].[payload]"),
    {"preset": "stripe", "secret": "whsec_abc"},
    {"preset": "slack", "secrets": ["a", "b"], "toleranceSeconds": 60},
    {"preset": "github", "secret": "It's a Secret to Everybody"},
    {"preset": "svix", "secret": "whsec_" + base64.b64encode(b"k" * 24).decode()},
    {"preset": "standard-webhooks", "secret": "whpk_" + base64.b64encode(b"k" * 32).decode()},
    body_config(
        algorithm="ed25519", digest="base64", secretEncoding="base64", secret=base64.b64encode(b"k" * 32).decode()
    ),
]

# (config, path, message fragment, whether the JSON Schema alone can tell)
INVALID_CONFIGS: list[tuple[Any, str, str, bool]] = [
    ("stripe", "$", "must be an object", True),
    ({"preset": "paypal", "secret": "x"}, "$.preset", "unknown preset", True),
    ({"preset": "stripe"}, "$", "exactly one of secret or secrets", True),
    ({"preset": "stripe", "secret": "x", "algorithm": "sha1"}, "$.algorithm", "unknown key", True),
    ({"preset": "github", "secret": "x", "toleranceSeconds": 60}, "$.toleranceSeconds", "needs a timestamp", True),
    ({"preset": "standard-webhooks", "secret": "whsec_!!!"}, "$.secret", "not valid whsec", False),
    (body_config(secret=""), "$.secret", "non-empty string", True),
    (body_config(secret=" padded "), "$.secret", "whitespace", True),
    (body_config(secret=None), "$", "exactly one of secret or secrets", True),
    (body_config(secrets=["a"]), "$", "exactly one of secret or secrets", True),
    (body_config(secret=None, secrets=[]), "$.secrets", "list of 1 to 10", True),
    (body_config(secret=None, secrets=["a", ""]), "$.secrets[1]", "non-empty string", True),
    (body_config(secret=None, secrets=[f"s{i}" for i in range(11)]), "$.secrets", "list of 1 to 10", True),
    (body_config(secret=123), "$.secret", "non-empty string", True),
    (body_config(secret="••••" + SECRET[-4:]), "$.secret", "masked value", True),
    (body_config(secretEncoding="hex"), "$.secretEncoding", "must be one of", True),
    (body_config(secret="not base64!", secretEncoding="base64"), "$.secret", "not valid base64", False),
    (body_config(secret="whsec_", secretEncoding="whsec"), "$.secret", "empty whsec key", False),
    (body_config(algorithm="md5"), "$.algorithm", "must be one of sha1, sha256, sha512", True),
    (body_config(algorithm="SHA256"), "$.algorithm", "must be one of", True),
    (body_config(digest="base32"), "$.digest", "must be one of hex, base64", True),
    (body_config(algorithm="ed25519"), "$.secretEncoding", "base64 or whpk", True),
    (body_config(algorithm="ed25519", secretEncoding="whsec"), "$.secretEncoding", "base64 or whpk", True),
    (body_config(secretEncoding="whpk"), "$.secretEncoding", "an HMAC needs a shared secret", True),
    (body_config(algorithm="ed25519", secretEncoding="whpk", secret="whpk_AAAA"), "$.secret", "32 bytes", False),
    ({"secret": "x"}, "$.signature", "signature is required", True),
    (body_config(signature="X-Sig"), "$.signature", "must be an object", True),
    (body_config(signature={"parsePrefix": "v1="}), "$.signature.header", "header name", True),
    (body_config(signature={"header": "X Sig"}), "$.signature.header", "header name", True),
    (body_config(signature={"header": "X-Sig", "prefix": "v1="}), "$.signature.prefix", "unknown key", True),
    (body_config(signature={"header": "X-Sig", "parsePrefix": ""}), "$.signature.parsePrefix", "non-empty", True),
    (body_config(signature={"header": "X-Sig", "parsePrefix": " v1="}), "$.signature.parsePrefix", "spaces", True),
    (body_config(signature={"header": "X-Sig", "separator": " "}), "$.signature.separator", "needs parsePrefix", True),
    (
        body_config(signature={"header": "X-Sig", "parsePrefix": "v", "separator": ""}),
        "$.signature.separator",
        "non-empty",
        True,
    ),
    (body_config(template="[timestamp].[body]"), "$.template", "unknown template token [body]", True),
    (body_config(template="[timestmp].[payload]"), "$.template", "unknown template token [timestmp]", True),
    (body_config(template="[header:].[payload]"), "$.template", "unknown template token [header:]", True),
    (body_config(template="[payload"), "$.template", "unbalanced", True),
    (body_config(template="[timestamp]"), "$.template", "must contain [payload]", True),
    (body_config(template=""), "$.template", "must contain [payload]", True),
    (body_config(template=["[payload]"]), "$.template", "must be a string", True),
    (body_config(template="[timestamp].[payload]"), "$.template", "no timestamp header", True),
    (timed_config(template="[payload]"), "$.template", "must contain [timestamp]", True),
    ({k: v for k, v in timed_config().items() if k != "template"}, "$.template", "template is required", True),
    (timed_config(timestamp={"header": "X-T", "extra": 1}), "$.timestamp.extra", "unknown key", True),
    (body_config(toleranceSeconds=300), "$.toleranceSeconds", "needs a timestamp", True),
    (timed_config(toleranceSeconds=0), "$.toleranceSeconds", "positive integer", True),
    (timed_config(toleranceSeconds=True), "$.toleranceSeconds", "positive integer", True),
    (timed_config(toleranceSeconds="300"), "$.toleranceSeconds", "positive integer", True),
    (body_config(enabled=False), "$.enabled", "unknown key", True),
]


def _without_none(config: Any) -> Any:
    return {k: v for k, v in config.items() if v is not None} if isinstance(config, dict) else config


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft202012Validator:
    schema = load_schema("verification")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("config", [_without_none(c) for c in VALID_CONFIGS])
def test_valid_configs_compile_and_match_the_schema(config: dict[str, Any], schema_validator: Any) -> None:
    assert isinstance(compile_verification(config), Verifier)
    assert list(schema_validator.iter_errors(config)) == []


@pytest.mark.parametrize(("config", "path", "fragment", "schema_tells"), INVALID_CONFIGS)
def test_invalid_configs_are_refused(
    config: Any, path: str, fragment: str, schema_tells: bool, schema_validator: Any
) -> None:
    config = _without_none(config)
    with pytest.raises(VerificationConfigError) as caught:
        compile_verification(config)
    assert caught.value.path == path
    assert fragment in caught.value.message
    assert caught.value.to_dict() == {"message": caught.value.message, "path": path}
    assert schema_validator.is_valid(config) is not schema_tells


def test_config_errors_never_contain_the_secret() -> None:
    for secret in (" my-secret-value ", "my secret value not base64!!"):
        with pytest.raises(VerificationConfigError) as caught:
            compile_verification(body_config(secret=secret, secretEncoding="base64"))
        assert secret.strip() not in str(caught.value)


# --- public_view ---------------------------------------------------------------------


def test_public_view_masks_every_secret() -> None:
    config = body_config(secret=None, secrets=[SECRET, "short"])
    view = public_view(_without_none(config))
    assert view is not None
    assert view["secrets"] == ["••••" + SECRET[-4:], "••••"]
    assert view["signature"] == config["signature"]
    assert SECRET not in repr(view) and "short" not in repr(view)
    assert config["secrets"] == [SECRET, "short"]  # the stored config is untouched


def test_public_view_of_a_preset_and_of_nothing() -> None:
    assert public_view({"preset": "stripe", "secret": "whsec_0123456789abcdefXYZW"}) == {
        "preset": "stripe",
        "secret": "••••XYZW",
    }
    assert public_view(None) is None


def test_public_view_masks_malformed_secret_fields_too() -> None:
    assert public_view({"secret": ["x" * 40], "secrets": "y" * 40}) == {"secret": "••••", "secrets": "••••"}
