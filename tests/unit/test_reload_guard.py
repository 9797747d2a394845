"""proxy.reload_guard and the explicit `false` spellings: auth is never dropped by accident."""

import pytest

from proxy import reload_guard, watch
from proxy.config import ConfigError, parse

BASE = """\
version: 1
backends: {demo: {type: mock}}
models: {demo: {targets: [{backend: demo}]}}
"""
KEYS = "keys: [{name: a, key: sk-a}]\n"
ADMIN = "settings: {admin_key: adm-1}\n"


def test_keys_false_is_no_auth_on_purpose_and_quoted_false_is_not() -> None:
    off = parse(BASE + "keys: false\n", {})
    assert off.keys is None and off.keys_off
    assert parse(BASE + "keys: off\n", {}).keys_off  # YAML 1.1 spelling of false
    assert not parse(BASE, {}).keys_off
    with pytest.raises(ConfigError):
        parse(BASE + "keys: true\n", {})  # not a list of keys
    with pytest.raises(ConfigError):
        parse(BASE + 'keys: "false"\n', {})


def test_admin_key_false_is_off_on_purpose_and_quoted_false_is_a_key() -> None:
    off = parse(BASE + "settings: {admin_key: false}\n", {}).settings
    assert off.admin_key is None and off.admin_key_off
    quoted = parse(BASE + "settings: {admin_key: 'false'}\n", {}).settings
    assert quoted.admin_key is not None and quoted.admin_key.reveal() == "false"
    assert not quoted.admin_key_off


@pytest.mark.parametrize(
    ("serving", "new", "refusals"),
    [
        (KEYS, "", 1),  # keys: section gone (a half-written file)
        (KEYS, "keys: false\n", 0),  # said on purpose
        (KEYS, "keys: [{name: b, key: sk-b}]\n", 0),  # other keys: still auth
        ("", "", 0),  # never had keys
        ("keys: []\n", "", 1),  # deny-all is auth too
        (ADMIN, "", 1),
        (ADMIN, "settings: {admin_key: false}\n", 0),
        (ADMIN + KEYS, "", 2),
        (ADMIN + KEYS, "settings: {admin_key: false}\nkeys: false\n", 0),
    ],
)
def test_dropping_auth_is_refused_unless_explicit(serving: str, new: str, refusals: int) -> None:
    reasons = reload_guard.dropped_auth(parse(BASE + serving, {}), parse(BASE + new, {}))
    assert len(reasons) == refusals
    assert all("reload refused" in r and ": false`" in r for r in reasons)


def test_a_file_settles_only_once_untouched_for_the_settle_time() -> None:
    mtime = 1_000_000_000_000
    sig = (mtime, 10, 1)
    assert not watch.settled(sig, mtime)
    assert not watch.settled(sig, mtime + int(watch.SETTLE * 1e9) - 1)
    assert watch.settled(sig, mtime + int(watch.SETTLE * 1e9))
    assert watch.settled(sig, mtime - 1)  # mtime in the future (clock step): not stuck
