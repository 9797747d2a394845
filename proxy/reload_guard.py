"""What a hot reload may not do by accident: switch client auth or the admin key off.

A file caught half-written is often a valid config (a prefix that ends before `keys:`), and
loading it would let anyone in. So a reload from a config with client keys (or an admin key)
to one without is refused unless the new file switches it off explicitly: `keys: false`,
`settings.admin_key: false`. Pure: two configs in, the reasons to refuse out.
"""

from proxy.config import Config

_HINT = "(a half-written file?); to turn it off on purpose, write `{spelling}`"


def dropped_auth(serving: Config, new: Config) -> tuple[str, ...]:
    """Why `new` may not replace `serving`; empty when it may."""
    reasons: list[str] = []
    if serving.keys is not None and new.keys is None and not new.keys_off:
        reasons.append(
            f"reload refused: the new file has no keys: section, which would turn client auth "
            f"off for the {len(serving.keys)} key(s) now served "
            + _HINT.format(spelling="keys: false")
        )
    had_admin = serving.settings.admin_key is not None
    if had_admin and new.settings.admin_key is None and not new.settings.admin_key_off:
        reasons.append(
            "reload refused: the new file sets no settings.admin_key, which would open /admin/* "
            "to loopback clients without a key " + _HINT.format(spelling="admin_key: false")
        )
    return tuple(reasons)
