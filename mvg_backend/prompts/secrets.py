"""Secrets: tell a credential from a variable name, and scrub credentials out of text.

One place decides what "looks like a secret", so that every part of the pack (the LLM settings, error
messages, logs, the report redaction of saved workflows) refuses and hides the same values:

- ``looks_like_secret(s)``: a value shaped like an API key or token (a known prefix such as ``sk-``, ``hf_``,
  ``gsk_``, ``AKIA``, ``ghp_``; 32+ hex digits; a long run of letters mixed with digits; high entropy; or
  simply too long for a variable name). Use it before quoting any value a user typed where a *name* belongs.
- ``plausible_env_name(s)``: a conventional environment-variable name (``OPENAI_API_KEY``, ``my_key``), safe
  to quote back in a message.
- ``scrub(text, secrets)``: ``text`` with every given secret (and long fragments of it), URL userinfo,
  ``Bearer``/``Basic`` credentials and known-prefix tokens replaced by ``[redacted]``.
- ``split_userinfo(url)``: ``(url without user:password@, user, password)``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "looks_like_secret", "plausible_env_name", "scrub", "split_userinfo"]

REDACTED = "[redacted]"
MAX_NAME_CHARS = 64  # longer than any real variable name: treat as a pasted value

# Vendor prefixes of API keys and tokens (followed by at least 8 token characters).
_PREFIXES = (r"sk-(?:proj-|ant-|svcacct-|admin-)?", r"sk_(?:live|test)_", r"rk_(?:live|test)_", r"pk_(?:live|test)_",
             r"hf_", r"gsk_", r"xai-", r"ghp_", r"gho_", r"ghu_", r"ghs_", r"ghr_", r"github_pat_", r"glpat-",
             r"AIza", r"AKIA", r"ASIA", r"xox[abposr]-", r"pplx-", r"nvapi-", r"r8_", r"fw_", r"sess-",
             r"dop_v1_", r"npm_", r"pypi-", r"shpat_", r"SG\.", r"eyJ")
_PREFIXED = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(_PREFIXES) + r")[A-Za-z0-9_\-.=+/]{8,}")
_PREFIXED_WHOLE = re.compile(r"^(?:" + "|".join(_PREFIXES) + r")[A-Za-z0-9_\-.=+/]{8,}$")
_HEX = re.compile(r"^[0-9a-fA-F]{32,}$")
_SEGMENTS = re.compile(r"[_\-.:/+=~]+")
_UPPER_SNAKE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_LOWER_SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")
_ENV_CHARS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]*@")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]{8,})")
_WORD = re.compile(r"[^\s\"'`,;()<>\[\]{}]+")
_FRAGMENT = 8  # a word that shares this many characters with a secret is part of it


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def looks_like_secret(value: object) -> bool:
    """True when ``value`` is shaped like a credential rather than a name.

    Known vendor prefixes (sk-, sk-proj-, hf_, gsk_, xai-, AKIA, ghp_, github_pat_, glpat-, AIza, ...), 32 or
    more hex digits (Azure keys, hashes), anything longer than :data:`MAX_NAME_CHARS`, or a part (between
    ``_``, ``-`` or ``.``) of 16+ characters that mixes letters and digits, or of 20+ characters that mixes
    upper and lower case or has a high entropy. Conventional names (``OPENAI_API_KEY``,
    ``AZURE_OPENAI_API_KEY``, ``hf_token``) are not secrets.
    """
    if not isinstance(value, str):
        return False
    s = value.strip()
    if not s:
        return False
    words = s.split()
    if len(words) > 1:
        return any(looks_like_secret(w) for w in words)
    if len(s) > MAX_NAME_CHARS:
        return True  # longer than any variable name
    if _PREFIXED_WHOLE.match(s) or _HEX.match(s):
        return True
    for part in _SEGMENTS.split(s):
        letters = sum(ch.isalpha() for ch in part)
        digits = sum(ch.isdigit() for ch in part)
        mixed_case = any(ch.islower() for ch in part) and any(ch.isupper() for ch in part)
        if len(part) >= 16 and letters and digits:
            return True
        if len(part) >= 20 and (mixed_case or _entropy(part) >= 3.7):
            return True
    if len(s) >= 24 and _entropy(s) >= 4.2 and any(ch.isdigit() for ch in s):
        return True
    return False


def plausible_env_name(value: object) -> bool:
    """True for a conventional environment-variable name that is safe to quote back to the user:
    UPPER_SNAKE or lower_snake, at most 64 characters, few digits, and not :func:`looks_like_secret`."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS or not _ENV_CHARS.match(value):
        return False
    if not (_UPPER_SNAKE.match(value) or _LOWER_SNAKE.match(value)) or looks_like_secret(value):
        return False
    return sum(ch.isdigit() for ch in value) <= max(2, len(value) // 4)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without "user:password@", user, password)``; user and password are URL-decoded (or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return (urlunsplit(parts._replace(netloc=host)), unquote(user) or None,
            unquote(password) if sep else None)


def _fragments(secret: str) -> set[str]:
    return {secret[i:i + _FRAGMENT] for i in range(len(secret) - _FRAGMENT + 1)}


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without credentials: each of ``secrets`` (and any word that shares 8 characters with one of
    them, e.g. a key the server quotes in part), URL userinfo, ``Bearer``/``Basic``/``api_key`` values and
    tokens with a known vendor prefix become ``[redacted]``."""
    if not isinstance(text, str) or not text:
        return text
    known = sorted({s for s in secrets if isinstance(s, str) and len(s.strip()) >= 4}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    grams: set[str] = set()
    for secret in known:
        if len(secret) >= 12:
            grams |= _fragments(secret)
    if grams:
        def word(m: re.Match) -> str:
            w = m.group(0)
            if len(w) >= _FRAGMENT and any(w[i:i + _FRAGMENT] in grams for i in range(len(w) - _FRAGMENT + 1)):
                return REDACTED
            return w

        text = _WORD.sub(word, text)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _AUTH_VALUE.sub(lambda m: m.group(1) + m.group(2) + REDACTED
                           if looks_like_secret(m.group(3)) or any(c.isdigit() for c in m.group(3)) else m.group(0),
                           text)
    return _PREFIXED.sub(REDACTED, text)
