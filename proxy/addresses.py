"""Which host names and addresses are this machine's own (loopback). Pure: no DNS, no I/O.

A gateway bound to `::` answers IPv4 clients too, as IPv4-mapped IPv6 addresses
(`::ffff:127.0.0.1`): those are loopback exactly when the IPv4 address inside is.
"""

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost`, `127.0.0.0/8`, `::1`, or an IPv4-mapped loopback; brackets and an IPv6
    zone (`[::1]`, `fe80::1%eth0`) are allowed; anything else, names included, is not."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
