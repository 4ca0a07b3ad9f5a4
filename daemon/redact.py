"""Keep secrets out of everything gaitwatch prints: check-config, logs, STATUS, error messages.

Two kinds of secret reach the config: credentials inside camera URLs (``rtsp://admin:PASSWORD@10.0.0.5/...``,
or ``?password=...`` query parameters, which OpenCV needs verbatim) and values under keys whose name says they
are secret (a misplaced ``password = "..."``). ``check-config`` runs as ``ExecStartPre=``, so whatever it
prints lands in the journal, readable by every admin; so do validation errors. Everything shown to a person goes
through ``redact_text`` / ``redact_value`` first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

MASK: Final = "***"
# Key names that hold secrets (matched case-insensitively anywhere in the name: mqtt_password, api_key...).
_SECRET_KEY: Final = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)
# key = the one exception: a known, non-secret key name containing "key"
_NOT_SECRET: Final = frozenset({"key_file", "keepalive_s"})
# scheme://user:password@host -> scheme://user:***@host (the user name stays: it helps an admin). The password
# runs to the authority's last '@' (greedy, but never past the path, query or fragment): FFmpeg splits there,
# so a raw '@' inside a password is still masked whole.
_URL_PASSWORD: Final = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@?#]*):(?P<secret>[^/\s?#]*)@")
# ?password=...&token=... in a URL's query.
_QUERY_SECRET: Final = re.compile(
    r"(?P<head>[?&;](?:[^=&;\s#]*(?:pass|pwd|secret|token|key|auth)[^=&;\s#]*)=)(?P<secret>[^&;\s#]*)",
    re.IGNORECASE,
)


def is_secret_key(name: str) -> bool:
    return name not in _NOT_SECRET and _SECRET_KEY.search(name) is not None


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret query parameters masked (anything else unchanged)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('head')}{MASK}", text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """A config value fit for printing: masked whole under a secret-looking key, URL credentials masked in
    strings, dicts and lists redacted recursively."""
    if key is not None and is_secret_key(key) and value is not None:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value
