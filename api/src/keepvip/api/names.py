"""Rules for names and paths in the VirtualIP API, checked in words.

A pattern failure used to read "String should match pattern '^[^/\\s:]{1,15}$'"; each
rule here says what is allowed instead. The CRD keeps an equivalent (where expressible,
looser) OpenAPI pattern so the API server and admission agree.
"""

from __future__ import annotations

import re
from typing import Any, Final

from keepvip.api.text import shown

# Linux dev_valid_name() (net/core/dev.c): 1..IFNAMSIZ-1 bytes, not "." or "..", and no
# '/', ':' or isspace() byte. The kernel's isspace() is ASCII \t\n\v\f\r, space and 0xA0.
IFNAMSIZ: Final = 16
_IFNAME_FORBIDDEN: Final = frozenset(b"/:\0\t\n\v\f\r \xa0")
IFNAME_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "maxLength": IFNAMSIZ - 1,
    "pattern": r"^[^/:\s\x00]+$",
}

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# RFC 9112 §3.2 / RFC 3986 §2: a request target is visible ASCII; anything else is
# percent-encoded. The probe sends the path as it is written (an 'é' made it raise).
HTTP_PATH_SCHEMA: Final[dict[str, Any]] = {"type": "string", "pattern": r"^/[!-~]*$"}


def check_ifname(name: str) -> str:
    """Refuse a name Linux would refuse for an interface (``ip link`` says "not a valid ifname")."""
    raw = name.encode("utf-8", "surrogatepass")
    if not 1 <= len(raw) < IFNAMSIZ:
        raise ValueError(f"an interface name is 1 to {IFNAMSIZ - 1} bytes, {shown(name)} has {len(raw)}")
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not an interface name")
    if any(byte in _IFNAME_FORBIDDEN for byte in raw):
        raise ValueError(f"{shown(name)}: an interface name has no '/', ':', whitespace or NUL")
    return name


def check_dns_label(name: str) -> str:
    """A DNS label (RFC 1123): lower-case letters, digits and '-', 1..63, alphanumeric at both ends."""
    if not _DNS_LABEL.fullmatch(name):
        raise ValueError(
            f"{shown(name)} is not a DNS label: 1 to 63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_http_path(path: str) -> str:
    """An HTTP request path: starts with '/', then visible ASCII only (no CR/LF injection, no 'é')."""
    if not path.startswith("/"):
        raise ValueError(f"{shown(path)}: a path starts with '/'")
    if any(not 0x21 <= ord(c) <= 0x7E for c in path):
        raise ValueError(
            f"{shown(path)}: a path is visible ASCII, no spaces, control or other characters "
            "(percent-encode them: %20, %0D, %C3%A9...)"
        )
    return path
