"""The speaker's command-line options about programs, turned into one :class:`ScriptPolicy`.

Defaults differ by mode on purpose. Standalone is the keepalived use case: the host's
administrator writes the configuration, so exec checks run (as the script user, under
script security). In a cluster, whoever may write a VirtualIP would choose the program,
so exec checks are off unless the chart turns them on (``speaker.execChecks.enabled``),
and then only absolute paths inside the allowlist run. The speaker applies this itself:
it never assumes that the admission webhook ran.
"""

from __future__ import annotations

import argparse

from keepvip.speaker.sandbox import ScriptPolicy, resolve_script_user

CHART_VALUE = "speaker.execChecks.enabled"


def script_policy(args: argparse.Namespace) -> ScriptPolicy:
    """The policy for this run; raise ValueError naming a bad option."""
    kubernetes = bool(args.kubernetes)
    exec_checks = (args.exec_checks or ("off" if kubernetes else "on")) == "on"
    allowed: tuple[str, ...] | None = tuple(args.exec_allow) if args.exec_allow else None
    for pattern in allowed or ():
        if not pattern.startswith("/"):
            raise ValueError(f"--exec-allow: {pattern!r} is not an absolute path pattern")
    if kubernetes and allowed is None:
        allowed = ()
    if args.notify_timeout <= 0:
        raise ValueError("--notify-timeout: must be positive")
    hint = (
        f"exec checks are disabled in this cluster (chart value {CHART_VALUE})"
        if kubernetes
        else "exec checks are disabled on this speaker (--exec-checks off)"
    )
    return ScriptPolicy(
        run_as=resolve_script_user(args.script_user),
        exec_checks=exec_checks,
        allowed=allowed,
        require_absolute=kubernetes,
        script_security=not args.no_script_security,
        disabled_hint=hint,
        notify_timeout=args.notify_timeout,
    )
