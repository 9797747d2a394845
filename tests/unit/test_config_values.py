"""proxy.config values: client keys and their digests, ${VAR} interpolation, durations,
sizes, and the Secret type that keeps them out of reprs and problems."""

import hashlib
import json
import pickle

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.config import (
    ConfigError,
    Problem,
    Secret,
    Settings,
    parse,
    parse_duration,
    parse_size,
)
from tests.unit.config_support import MINIMAL, problems, with_backend, with_settings

# --- keys ------------------------------------------------------------------------------------


def test_keys_by_key_or_sha256() -> None:
    digest = hashlib.sha256(b"secret-b").hexdigest()
    text = MINIMAL + (
        "keys:\n  - {name: a, key: secret-a, rpm: 5}\n"
        f"  - {{name: b, sha256: {digest.upper()}}}\n"
    )
    a, b = parse(text, {}).keys or ()
    assert (a.digest, a.rpm, a.tpm, a.models) == (
        hashlib.sha256(b"secret-a").digest(),
        5,
        None,
        None,
    )
    assert b.digest == bytes.fromhex(digest)


def test_no_keys_section_means_none() -> None:
    assert parse(MINIMAL, {}).keys is None
    config = parse(MINIMAL + "keys: []\n", {})
    assert config.keys == ()
    assert "every request is refused" in str(config.warnings[-1])


def test_key_problems_never_echo_secrets() -> None:
    text = MINIMAL + (
        "keys:\n"
        "  - {name: team-a, key: ''}\n"
        "  - {name: team-a, key: s3cr3t-one, sha256: s3cr3t-two}\n"
        "  - {name: c, sha256: s3cr3t-three}\n"
        "  - {key: s3cr3t-four}\n"
        "  - {name: d, key: s3cr3t-five, models: [a, {x: 1}], rpm: 0}\n"
        "  - {name: e, key: s3cr3t-five}\n"
    )
    found = problems(text)
    assert found == [
        "routes.yaml:8:25: key for team-a is empty",
        "routes.yaml:9:12: duplicate key name 'team-a' (first on line 8)",
        "routes.yaml:9:37: give exactly one of key: or sha256: for team-a",
        "routes.yaml:10:23: expected 64 hex digits: the SHA-256 of the key",
        "routes.yaml:11:5: a keys entry needs name: (whose key it is)",
        "routes.yaml:12:45: expected a single value, got a mapping",
        "routes.yaml:12:59: expected an integer >= 1, got 0",
        "routes.yaml:13:5: key for e is the same as the key for d",
    ]
    assert "s3cr3t" not in "\n".join(found)


# --- interpolation ---------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
# Anything a real environment can hold that a header-bound key may carry: one line, no NUL.
values = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]), min_size=1)
defaults = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="}"))


def api_key_yaml(reference: str) -> str:
    quoted = json.dumps(reference)
    return f"version: 1\nbackends:\n  b: {{type: openai, api_key: {quoted}}}\nmodels: {{}}\n"


@given(names, values)
def test_variable_round_trips(name: str, value: str) -> None:
    config = parse(api_key_yaml(f"${{{name}}}"), {name: value})
    assert config.backends[0].api_key == Secret(value)


@given(names, st.none() | st.just("") | values, defaults)
def test_default_applies_when_unset_or_empty(name: str, value: str | None, default: str) -> None:
    env = {} if value is None else {name: value}
    backend = parse(api_key_yaml(f"${{{name}:-{default}}}"), env).backends[0]
    expected = value or default
    if expected:
        assert backend.api_key is not None
        assert backend.api_key.reveal() == expected
    else:
        assert backend.disabled == f"api_key is empty (set {name})"


@given(st.text(st.sampled_from("ab$")))
def test_double_dollar_is_a_literal_dollar(raw: str) -> None:
    text = raw.replace("$", "$$") + "x"
    assert parse(api_key_yaml(text), {}).backends[0].api_key == Secret(raw + "x")


def test_interpolation_mixes_text_and_references() -> None:
    backend = parse(api_key_yaml("$$${A}-${B:-b}-$x-${C:-}"), {"A": "a"}).backends[0]
    assert backend.api_key == Secret("$a-b-$x-")


def test_interpolated_scalars_are_typed_after_substitution() -> None:
    text = with_settings(
        "retries: ${RETRIES:-2}\ncooldown: ${COOLDOWN:-30s}\nmax_body: '${MB}'\n"
        "failure_threshold: ${FT:-}"
    )
    s = parse(text, {"RETRIES": "0x3", "MB": "4096"}).settings
    assert (s.retries, s.cooldown, s.max_body, s.failure_threshold) == (3, 30.0, 4096, 3)
    stream = with_backend("type: openai\nstream: ${STREAM}")
    assert parse(stream, {"STREAM": "false"}).backends[0].stream is False
    assert problems(with_settings("retries: ${R}"), {"R": "many"}) == [
        "routes.yaml:8:12: expected an integer from 0 to 10, got 'many'"
    ]


def test_bad_references_are_problems_and_not_echoed() -> None:
    assert problems(api_key_yaml("${sk-live-123}")) == [
        "routes.yaml:3:30: a '${' must be ${NAME} or ${NAME:-default}"
        " (NAME is letters, digits and _); write $$ for a literal $"
    ]
    assert len(problems(api_key_yaml("${UNCLOSED"))) == 1


def test_unset_variables_are_each_named() -> None:
    assert problems(api_key_yaml("${A}${B}")) == [
        "routes.yaml:3:30: environment variable A is not set; set it or write ${A:-default}",
        "routes.yaml:3:30: environment variable B is not set; set it or write ${B:-default}",
    ]


def test_admin_key_empty_is_none() -> None:
    text = with_settings("admin_key: ${ADMIN:-}")
    assert parse(text, {}).settings.admin_key is None
    assert parse(text, {"ADMIN": "a"}).settings.admin_key == Secret("a")


# --- durations and sizes ---------------------------------------------------------------------

naturals = st.integers(min_value=0, max_value=10**12)


@given(naturals)
def test_duration_units(n: int) -> None:
    assert parse_duration(f"{n}ms") == n / 1000
    assert parse_duration(f"{n}s") == n
    assert parse_duration(f"{n}m") == n * 60
    assert parse_duration(f"{n}h") == n * 3600
    assert parse_duration(str(n)) == n
    assert parse_duration(n) == n


@given(st.floats(min_value=0, max_value=1e9))
def test_duration_numbers_are_seconds(x: float) -> None:
    assert parse_duration(x) == x


def test_duration_forms() -> None:
    assert parse_duration("1.5s") == 1.5
    assert parse_duration(" 250ms ") == 0.25
    assert parse_duration("1m30s") == 90
    assert parse_duration(".5h") == 1800


@given(st.text().filter(lambda s: not any(c.isdigit() for c in s)))
@example("5 parsecs")
@example("-5s")
@example("5x")
@example("1e3s")
@example("inf")
@example("")
def test_duration_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match=r"^expected a duration like 5s or 250ms, got "):
        parse_duration(garbage)


@pytest.mark.parametrize("bad", [-1, -0.5, float("inf"), float("nan"), 10**400, True])
def test_duration_rejects_bad_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@given(naturals)
def test_size_units(n: int) -> None:
    assert parse_size(f"{n}MiB") == n * 2**20
    assert parse_size(f"{n}KiB") == n * 1024
    assert parse_size(f"{n}GiB") == n * 2**30
    assert parse_size(f"{n}KB") == n * 1000
    assert parse_size(f"{n}MB") == n * 10**6
    assert parse_size(f"{n}B") == n
    assert parse_size(str(n)) == n
    assert parse_size(n) == n


def test_size_forms() -> None:
    assert parse_size("16MiB") == 16 * 2**20
    assert parse_size("1.5KiB") == 1536
    assert parse_size("16 mib") == 16 * 2**20


@given(st.text().filter(lambda s: not any(c.isdigit() for c in s)))
@example("16 parsecs")
@example("1.5")
@example("-1")
@example("0.0001KiB")
@example("10XB")
def test_size_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match=r"^expected a size like 16MiB or 512KiB, got "):
        parse_size(garbage)


def test_size_rejects_negative_and_bool() -> None:
    for bad in (-1, True):
        with pytest.raises(ValueError, match="expected a size"):
            parse_size(bad)


# --- secrets and values ----------------------------------------------------------------------


@given(values)
def test_secret_never_shows_itself(value: str) -> None:
    secret = Secret(value)
    assert repr(secret) == str(secret) == f"{secret}" == f"{secret!r}" == "Secret('***')"
    assert secret.reveal() == value
    assert secret == Secret(value)
    assert hash(secret) == hash(Secret(value))
    assert secret != Secret(value + "x")
    assert secret != value
    assert "***" in repr(Settings(admin_key=secret))


def test_config_error_str_and_pickle() -> None:
    err = ConfigError([Problem("r.yaml", 1, 2, "a"), Problem("r.yaml", 3, 4, "b")])
    assert str(err) == "r.yaml:1:2: a\nr.yaml:3:4: b"
    assert pickle.loads(pickle.dumps(err)).problems == err.problems
