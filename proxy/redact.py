"""Mask secrets and personal data in text bound for a log line.

Two strengths: `scrub` masks credentials only (API keys, bearer tokens, `key=` query values,
long hex/base64 secrets, and the exact secrets the gateway was configured with); `redact`
also masks e-mail addresses, phone numbers and card numbers (Luhn-valid digit runs).
Credentials never reach a log, whatever `log_prompts` says; personal data is masked in
`redacted` mode. Pure: no I/O, no clock.

Every pattern checks the token boundary before its match (a lookbehind on the run's own
alphabet), so a hostile prompt cannot make matching quadratic. A pattern runs only when a
cheap test (a substring, a long enough run of token characters, enough digits) says it could
match, which keeps ordinary prose at a few microseconds per kilobyte.
"""

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from proxy.config import Config

SECRET = "[SECRET]"
EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"


class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    hints: tuple[str, ...]  # runs when one is in the text (lower-cased if `fold`); (): a long run
    fold: bool = False


# Each pattern masks its whole match except a leading `keep` group (a header name, "Bearer ").
_SECRET_RULES = (
    # Authorization-style values: "Bearer <token>", "Authorization: Basic <b64>".
    _Rule(
        re.compile(r"(?P<keep>\b(?:[Bb]earer|BEARER)\s+)[A-Za-z0-9._~+/=-]{8,}"), ("bearer",), True
    ),
    _Rule(
        re.compile(
            r"(?i)(?P<keep>\b(?:api[_-]?key|x-api-key|x-goog-api-key|access[_-]?token"
            r"|refresh[_-]?token|auth[_-]?token|client[_-]?secret|secret[_-]?key|private[_-]?key"
            r"|password|passwd|authorization)[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|token)\s+)?)"
            r"[^\s\"'&,;]{4,}"
        ),
        ("key", "token", "secret", "passw", "authorization"),
        True,
    ),
    # Query-string credentials (Gemini's legacy `?key=`, signed URLs).
    _Rule(
        re.compile(
            r"(?P<keep>[?&](?:key|api_key|apikey|token|access_token|sig|signature)=)[^\s&#\"']{4,}"
        ),
        ("=",),
    ),
    # Provider key shapes: OpenAI/Anthropic sk-..., Google AIza..., GitHub, Slack, AWS, HF, Groq.
    _Rule(re.compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{8,}"), ("sk-",)),
    _Rule(re.compile(r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{20,}"), ("AIza",)),
    _Rule(
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]|github_pat|hf|gsk)_[A-Za-z0-9_]{20,}"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "hf_", "gsk_"),
    ),
    _Rule(re.compile(r"xox(?<![A-Za-z0-9-]xox)[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    _Rule(re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"), ("AKIA", "ASIA")),
    # Long hex (Azure keys are 32 hex digits): letters and digits both, so plain numbers stay.
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9])(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{32,}"
            r"(?![A-Za-z0-9])"
        ),
        (),
    ),
    # Long base64/base64url with upper, lower and digits mixed: what random secrets look like.
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/_-]*[A-Z])(?=[A-Za-z0-9+/_-]*[a-z])"
            r"(?=[A-Za-z0-9+/_-]*[0-9])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])"
        ),
        (),
    ),
)
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = tuple(r.pattern for r in _SECRET_RULES)
LONG_RUN = 32  # the shortest hex/base64 secret

_TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
_RUNS = bytes(0x61 if i in _TOKEN_CHARS else 0x20 for i in range(256))  # token char -> "a"
_NON_DIGITS = bytes(i for i in range(256) if not 0x30 <= i <= 0x39)

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![A-Za-z0-9-])"
)
# 13-19 digits, bare or in groups of four (Amex: 4-6-5); masked only when Luhn-valid.
_CARD = re.compile(
    r"\d(?<![\d+-]\d)(?:\d{12,18}|\d{3}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,4})?|\d{3}[ -]\d{6}[ -]\d{5})"
    r"(?!\d)"
)
# International (+CC, then up to six groups), or a separated national number such as
# (415) 555-0123, 415.555.0123, 020 7946 0958. Never a bare digit run: order numbers stay, and
# a 4-4-4-4 digit grouping (a Luhn-invalid card-like number) is not read as a phone.
_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,6}+(?!\d)")
_PHONE_NATIONAL = re.compile(
    r"(?:\((?<![\w+]\()(?<!\d\d\d[ .-]\()\d{2,4}\)[ .-]?"
    r"|\d(?<![\w+]\d)(?<!\d\d\d[ .-]\d)\d{1,3}[ .-])\d{3,4}[ .-]\d{3,4}(?!\w)(?![ .-]\d{3})"
)

_known: re.Pattern[str] | None = None
KNOWN_MIN = 6  # shorter configured secrets would mask ordinary words
# A header whose name holds one of these carries a secret value (admin output shows `***`).
SECRET_HEADER_HINTS = ("auth", "key", "token", "secret", "password", "cookie", "signature")


def set_known(secrets: Iterable[str]) -> None:
    """Remember the exact secrets this gateway holds (backend keys, admin key) to mask them."""
    global _known
    values = sorted({s for s in secrets if len(s) >= KNOWN_MIN}, key=len, reverse=True)
    _known = re.compile("|".join(re.escape(v) for v in values)) if values else None


def remember(config: "Config") -> None:
    """Mask this config's own secrets (backend keys, secret-looking header values, the admin
    key) wherever they would be logged; call after every load and successful reload."""
    values = [b.api_key.reveal() for b in config.backends if b.api_key is not None]
    values += [
        v
        for b in config.backends
        for k, v in b.headers
        if any(h in k.lower() for h in SECRET_HEADER_HINTS)
    ]
    if config.settings.admin_key is not None:
        values.append(config.settings.admin_key.reveal())
    set_known(values)


def _mask(m: re.Match[str]) -> str:
    keep = m.groupdict().get("keep")
    return (keep or "") + SECRET


def _long_run(text: str) -> bool:
    return b"a" * LONG_RUN in text.encode("utf-8", "ignore").translate(_RUNS)


def scrub(text: str) -> str:
    """Mask credentials only."""
    if _known is not None:
        text = _known.sub(SECRET, text)
    folded: str | None = None
    long_run: bool | None = None
    for rule in _SECRET_RULES:
        if rule.hints:
            if rule.fold:
                folded = text.lower() if folded is None else folded
                if not any(h in folded for h in rule.hints):
                    continue
            elif not any(h in text for h in rule.hints):
                continue
        else:
            long_run = _long_run(text) if long_run is None else long_run
            if not long_run:
                continue
        masked = rule.pattern.sub(_mask, text)
        if masked != text:
            text, folded, long_run = masked, None, None
    return text


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _card(m: re.Match[str]) -> str:
    text = m.group()
    digits = _digits(text)
    if len(digits) >= 13 and luhn(digits):
        return CARD
    # "4111 1111 1111 1111 12/25": a grouped 16-digit card, then another number.
    if len(text) > 19 and text[19] in " -" and luhn(digits[:16]):
        return CARD + text[19:]
    return text


_FOUR_FOUR_FOUR = re.compile(r"\d{4}[ .-]\d{4}[ .-]\d{4}")


def _national(m: re.Match[str]) -> str:
    s, end = m.string, m.end()
    followed = s[end : end + 1] in (" ", ".", "-") and s[end + 1 : end + 2].isdigit()
    if followed and _FOUR_FOUR_FOUR.fullmatch(m.group()):
        return m.group()  # the start of a longer grouped number (card-like), not a phone
    return PHONE


def _intl(m: re.Match[str]) -> str:
    return PHONE if len(_digits(m.group())) >= 8 else m.group()


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape_printable(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    # Quotes, backslashes and control characters stay escaped: the JSON stays valid.
    return ch if " " <= ch <= "~" and ch not in '"\\' else m.group()


def scrub_body(body: bytes) -> bytes:
    """An upstream body with credentials masked (upstreams quote keys in their errors).

    A key written with JSON `\\u` escapes (`"sk-\\u0061bc..."`) is seen too: printable
    escapes are read as the characters they stand for before matching."""
    text = body.decode("utf-8", "replace")
    if "\\u" in text:
        text = _JSON_ESCAPE.sub(_unescape_printable, text)
    clean = scrub(text)
    return body if clean == text else clean.encode()


_SECRET_VALUE = re.compile(
    r"(?i)^(bearer|basic|token)\s|^(sk|pk|rk|ak)[-_]|^AIza|^[A-Za-z0-9_\-+/=.]{24,}$"
)


_USERINFO = re.compile(r"//[^@/]*@")


def mask_userinfo(url: str) -> str:
    """A URL with its `user:password@` part masked (Redis and proxy URLs carry them)."""
    return _USERINFO.sub("//***@", url)


def looks_secret(name: str, value: str) -> bool:
    """A header that carries a secret: by its name, or by what its value looks like."""
    lname = name.lower()
    if any(h in lname for h in SECRET_HEADER_HINTS):
        return True
    return bool(_SECRET_VALUE.search(value.strip()))


def redact(text: str) -> str:
    """Mask credentials, e-mail addresses, phone numbers and card numbers."""
    text = scrub(text)
    if "@" in text:
        text = _EMAIL.sub(EMAIL, text)
    digits = len(text.encode("utf-8", "ignore").translate(None, _NON_DIGITS))
    if digits >= 8:  # the fewest digits any phone or card pattern takes
        if digits >= 13:
            text = _CARD.sub(_card, text)
        if "+" in text:
            text = _PHONE_INTL.sub(_intl, text)
        text = _PHONE_NATIONAL.sub(_national, text)
    return text


class ScrubFilter(logging.Filter):
    """Masks credentials in every record a handler emits, traceback included.

    Install it on the process's log handlers: an upstream error that echoes a key ("Incorrect
    API key provided: sk-...") or a URL with `?key=` is then cleaned wherever it is logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "llm_proxy.access":
            return True  # built clean
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def install_filter(logger: logging.Logger | None = None) -> None:
    """Put a `ScrubFilter` on each handler of `logger` (default: the root logger), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
