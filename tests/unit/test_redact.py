"""proxy.redact: personal data and credentials masked wherever they sit; prose left alone."""

import base64
import io
import logging
import string

from hypothesis import given
from hypothesis import strategies as st

from proxy import redact as redact_module
from proxy.redact import (
    CARD,
    EMAIL,
    PHONE,
    SECRET,
    ScrubFilter,
    install_filter,
    luhn,
    redact,
    scrub,
    set_known,
)

# Ordinary prose: words, small numbers, punctuation. Nothing here is personal or secret; words
# that announce a credential ("Bearer x", "password: x") are left out, since what follows them
# is masked whatever it looks like.
_CUES = ("bearer", "key", "token", "secret", "passw", "authorization")
_word = st.text(string.ascii_letters, min_size=1, max_size=12).filter(
    lambda w: not any(c in w.lower() for c in _CUES)
)
_small_number = st.integers(0, 99).map(str)
_punct = st.sampled_from([",", ".", ";", ":", "!", "?", "(", ")", "'", '"', "-", "--"])
prose = st.lists(st.one_of(_word, _word, _word, _small_number, _punct), max_size=30).map(" ".join)


def _luhn_complete(body: str) -> str:
    """Append the check digit that makes `body` Luhn-valid."""
    for d in "0123456789":
        if luhn(body + d):
            return body + d
    raise AssertionError("unreachable")


def _group(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


digit_runs = st.integers(13, 19).flatmap(
    lambda n: st.text(string.digits, min_size=n - 1, max_size=n - 1)
)
cards = st.tuples(digit_runs.map(_luhn_complete), st.sampled_from(["", " ", "-"])).map(
    lambda t: _group(*t)
)
# Luhn-invalid runs; grouped ones longer than 16 digits also not starting with a valid card.
invalid_cards = (
    st.tuples(
        digit_runs.map(_luhn_complete).map(lambda s: s[:-1] + str((int(s[-1]) + 1) % 10)),
        st.sampled_from(["", " ", "-"]),
    )
    .filter(lambda t: not (t[1] and len(t[0]) > 16 and luhn(t[0][:16])))
    .map(lambda t: _group(*t))
)

emails = st.tuples(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,15}", fullmatch=True),
    st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True), max_size=3)
    .filter(bool),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
).map(lambda t: f"{t[0]}@{'.'.join(t[1])}.{t[2]}")  # fmt: skip

_d = st.integers(0, 9).map(str)
phones = st.one_of(
    # North American, in its usual spellings.
    st.tuples(st.text(string.digits, min_size=10, max_size=10), st.sampled_from(range(5))).map(
        lambda t: [
            f"({t[0][:3]}) {t[0][3:6]}-{t[0][6:]}",
            f"{t[0][:3]}-{t[0][3:6]}-{t[0][6:]}",
            f"{t[0][:3]}.{t[0][3:6]}.{t[0][6:]}",
            f"+1 {t[0][:3]} {t[0][3:6]} {t[0][6:]}",
            f"+1{t[0]}",
        ][t[1]]
    ),
    # International E.164, bare or grouped.
    st.text(string.digits, min_size=8, max_size=14).map(lambda s: "+" + s),
    st.text(string.digits, min_size=10, max_size=10).map(lambda s: f"+44 {s[:2]} {s[2:6]} {s[6:]}"),
)

_tok = string.ascii_letters + string.digits
keys = st.one_of(
    st.text(_tok + "_-", min_size=20, max_size=48).map(lambda s: "sk-" + s),
    st.text(_tok + "_-", min_size=20, max_size=48).map(lambda s: "sk-ant-api03-" + s),
    st.text(_tok + "_-", min_size=35, max_size=35).map(lambda s: "AIza" + s),
    st.text(_tok, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    st.text("0123456789abcdef", min_size=32, max_size=64).filter(
        lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
    ),
    # base64 of random bytes: mixed case and digits, which tells a secret from a long word.
    st.binary(min_size=24, max_size=48)
    .map(lambda b: base64.b64encode(b).decode())
    .filter(lambda s: all(any(f(c) for c in s) for f in (str.isupper, str.islower, str.isdigit))),
)
bearer_tokens = st.text(_tok + "-._~+/", min_size=16, max_size=64)


def _embed(before: str, item: str, after: str) -> str:
    return f"{before} {item}, {after}"


@given(prose)
def test_prose_is_left_alone(text: str) -> None:
    assert redact(text) == text
    assert scrub(text) == text


@given(prose, invalid_cards, prose)
def test_luhn_invalid_digit_runs_are_left_alone(before: str, run: str, after: str) -> None:
    text = _embed(before, run, after)
    assert redact(text) == text


@given(prose, cards, prose)
def test_card_numbers_are_masked(before: str, card: str, after: str) -> None:
    assert redact(_embed(before, card, after)) == _embed(before, CARD, after)


@given(prose, emails, prose)
def test_emails_are_masked(before: str, email: str, after: str) -> None:
    assert redact(_embed(before, email, after)) == _embed(before, EMAIL, after)


@given(prose, phones, prose)
def test_phone_numbers_are_masked(before: str, phone: str, after: str) -> None:
    assert redact(_embed(before, phone, after)) == _embed(before, PHONE, after)


@given(prose, keys, prose)
def test_keys_are_masked_in_every_mode(before: str, key: str, after: str) -> None:
    expected = _embed(before, SECRET, after)
    assert redact(_embed(before, key, after)) == expected
    assert scrub(_embed(before, key, after)) == expected


@given(prose, bearer_tokens, prose)
def test_bearer_tokens_are_masked(before: str, token: str, after: str) -> None:
    text = _embed(before, "Authorization: Bearer " + token, after)
    out = scrub(text)
    assert token not in out
    assert out == _embed(before, "Authorization: Bearer " + SECRET, after)


@given(prose)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text + " mail a.b@example.com card 4111 1111 1111 1111 key sk-test-SECRET12345")
    assert redact(once) == once


def test_scrub_leaves_personal_data() -> None:
    text = "write to ann@example.com or call (415) 555-0123"
    assert scrub(text) == text
    assert redact(text) == f"write to {EMAIL} or call {PHONE}"


def test_query_and_header_style_secrets() -> None:
    assert (
        scrub("GET /v1beta/models?key=AbC123xyz&alt=sse")
        == f"GET /v1beta/models?key={SECRET}&alt=sse"
    )
    assert scrub('{"api_key": "hunter2hunter2"}') == f'{{"api_key": "{SECRET}"}}'
    assert scrub("x-goog-api-key: abcdef") == f"x-goog-api-key: {SECRET}"
    assert scrub("password=swordfish") == f"password={SECRET}"  # fmt: skip


def test_known_secrets_are_masked_whatever_their_shape() -> None:
    try:
        set_known(["plainsecretword", "tiny"])
        assert scrub("use plainsecretword here, tiny stays") == f"use {SECRET} here, tiny stays"
    finally:
        set_known([])
    assert redact_module._known is None


def test_long_hostile_input_is_linear() -> None:
    # Runs that almost match every pattern; quadratic matching would take seconds here.
    hostile = ("a" * 50_000) + ("1 " * 20_000) + ("+1" * 10_000) + ("x@" * 10_000)
    assert len(redact(hostile)) > 0


def test_scrub_filter_cleans_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("llm_proxy.test_scrub_filter")
    log.addHandler(handler)
    log.propagate = False
    install_filter(log)
    install_filter(log)  # once is enough
    assert [type(f) for f in handler.filters] == [ScrubFilter]
    try:
        log.warning("upstream said: Incorrect API key provided: %s", "sk-live-SECRET1234567")
        try:
            raise RuntimeError("GET https://g.example/v1?key=AIzaSECRETSECRETSECRET123 failed")
        except RuntimeError:
            log.exception("request failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "sk-live" not in out and "AIza" not in out
    assert f"Incorrect API key provided: {SECRET}" in out
    assert "RuntimeError" in out and "Traceback" in out
