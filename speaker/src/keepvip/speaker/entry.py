"""``keepvip speaker``'s entry point: import lightly first, then run the speaker.

A standalone speaker (``--config``) loads OpenSSL only if an HTTPS health check needs it
(:func:`keepvip.speaker.lean_imports.openssl_when_used`: asyncio without TLS, ``ssl`` on
first use, hashes from CPython's built-ins; 7.7 MiB of RSS, issue 15). This has to
happen before the first import of asyncio, hence a module of its own that imports
nothing else at load time. In a cluster (``--kubernetes``) the Kubernetes client loads
``ssl`` anyway, so nothing changes there.
"""

from __future__ import annotations

import argparse

from keepvip.speaker.lean_imports import openssl_when_used


def run(args: argparse.Namespace) -> int:
    """Run ``keepvip speaker`` (see :func:`keepvip.speaker.main.run`)."""
    if not args.kubernetes:
        openssl_when_used()
    from keepvip.speaker.main import run as run_speaker  # noqa: PLC0415 - after the line above

    return run_speaker(args)
