"""keepalived names (``VI_1``, ``VG_GW``) as Kubernetes names."""

from __future__ import annotations

import re


def dns_label(text: str, fallback: str) -> str:
    """``VI_1`` → ``vi-1``: a name the API accepts (a DNS label)."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or fallback
