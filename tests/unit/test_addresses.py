"""proxy.addresses and the serve defaults: loopback however it is spelled; --grace."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.__main__ import grace_seconds
from proxy.addresses import is_loopback


@given(st.integers(0, 2**24 - 1))
def test_every_ipv4_loopback_is_loopback_also_mapped_into_ipv6(n: int) -> None:
    v4 = ipaddress.IPv4Address((127 << 24) + n)
    assert is_loopback(str(v4))
    assert is_loopback(f"::ffff:{v4}")  # what a client looks like on a `--host ::` socket
    assert is_loopback(f"[::ffff:{v4}]")


@given(st.ip_addresses(v=4))
def test_mapped_ipv4_is_loopback_exactly_when_the_ipv4_address_is(
    v4: ipaddress.IPv4Address,
) -> None:
    assert is_loopback(f"::ffff:{v4}") == v4.is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("::1", True),
        ("[::1]", True),
        ("::", False),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_named_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_grace_defaults_to_the_configs_total_timeout() -> None:
    assert grace_seconds(None, 600.0) == 600
    assert grace_seconds(None, 90.5) == 91
    assert grace_seconds(None, 0.2) == 1
    assert grace_seconds(5, 600.0) == 5  # an explicit --grace wins
