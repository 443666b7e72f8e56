"""Secrets kept out of what Charter prints and logs: database and service URLs.

Every place that shows a URL (the start-up banner, log lines, error messages) passes it
through ``mask_url``, so a password never reaches a terminal, a log file or a CI transcript.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_url"]

MASK = "***"

# ``user:password@`` in the authority of ``scheme://user:password@host/...``. The password ends
# at the last ``@`` before the path (a password may hold an unescaped ``@``).
_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:)(?P<secret>[^/?#]*)@")
# ``password=...`` and its kin, as URL query parameters or libpq ``key=value`` words.
_PARAM = re.compile(
    r"(?P<head>(?:^|[?&;\s])(?:[A-Za-z_]*password|passwd|pwd|secret|token|api_key)=)"
    r"(?P<secret>[^&;#\s]*)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``."""
    masked = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", url, count=1)
    return _PARAM.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] else m[0], masked)
