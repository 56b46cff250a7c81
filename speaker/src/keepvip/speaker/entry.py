"""``keepvip speaker``'s entry point: import lightly first, then run the speaker.

A standalone speaker (``--config``) loads OpenSSL only if an HTTPS health check needs it
(:func:`keepvip.speaker.lean_imports.openssl_when_used`: asyncio without TLS, ``ssl`` on
first use, hashes from CPython's built-ins; 7.7 MiB of RSS, issue 15). This has to
happen before the first import of asyncio, hence a module of its own that imports
nothing else at load time. In a cluster (``--kubernetes``) the Kubernetes client loads
``ssl`` anyway, so nothing changes there. In both, pydantic looks for no plugins and
``importlib.metadata`` is not imported
(:func:`keepvip.speaker.lean_imports.pydantic_plugins_off`: 1.4 MiB).

Before all that, the VIPs a killed predecessor left on the node are removed
(:mod:`keepvip.speaker.net.early_sweep`): until then the node holds them beside the
backup that took over, and the imports are most of a restart.

Then, unless ``--no-supervisor``, the process forks (:mod:`keepvip.speaker.supervisor`): the
parent stays this small and, if the speaker is killed, sends the priority-0 advertisements
of the routers it was master of (:mod:`keepvip.speaker.net.handover`, from memory the two
share) and removes the VIPs at once; the child goes on.

Then the imported modules' objects (~42,000 of a speaker's ~110,000 at 1,000 VIPs) are
moved out of the garbage collector's generations (:func:`gc.freeze`): they live as long
as the process, and every full collection traversed them again — 2 of those while
1,000 routers start, 15-30 ms each on a quiet machine and up to 150 ms on a loaded one,
time in which no router's timer fires (issue 15, startup). No collection first: the
imports leave ~10 objects of cyclic garbage, not worth the 15-20 ms of CPU a
collection of 42,000 objects costs.
"""

from __future__ import annotations

import argparse
import gc
from functools import partial

from keepvip.speaker.lean_imports import openssl_when_used, pydantic_plugins_off
from keepvip.speaker.net.early_sweep import Leftover, recorded, sweep
from keepvip.speaker.supervisor import Exited, supervise


def run(args: argparse.Namespace) -> int:
    """Run ``keepvip speaker`` (see :func:`keepvip.speaker.main.run`)."""
    args.swept = sweep()  # before the imports: a killed speaker's VIPs go at once (see early_sweep)
    if args.supervisor:
        from keepvip.speaker.net import handover  # noqa: PLC0415 - after the sweep, which must come first

        args.handover = handover.Region.create()  # before the fork: shared with the child
        ended = supervise(remove=partial(_remove_after_death, args))
        if ended is not None:  # the parent, once the speaker is gone
            return _told(ended, args)
    if not args.kubernetes:
        openssl_when_used()
    pydantic_plugins_off()
    from keepvip.speaker.main import run as run_speaker  # noqa: PLC0415 - after the line above

    gc.freeze()
    return run_speaker(args)


def _remove_after_death(args: argparse.Namespace) -> list[tuple[str, Leftover]]:
    """What the parent does once the speaker died by a signal: it removes the marked VIPs at
    once, then what the state file names (kernels without ``IFA_PROTO``), if it still looks
    ours, and then sends the priority-0 advertisements of the routers the speaker was master
    of, so the backups take over after Skew_Time (RFC 9568 §6.4.3) instead of
    Master_Down_Interval; what it removed. VIPs first: no backup is prompted before they
    are gone, so none holds them beside this node."""
    removed = sweep()
    _configure_logging(args)
    from pathlib import Path  # noqa: PLC0415 - after a death only

    from keepvip.speaker.net import state_file  # noqa: PLC0415 - likewise
    from keepvip.speaker.net.handover import send  # noqa: PLC0415 - imported by run() already

    entries = state_file.load(Path(args.state_dir) / state_file.FILE_NAME)
    if entries:
        removed += sweep(recorded((entry.ifname, entry.address) for entry in entries))
    records, args.handover_malformed = args.handover.read()
    args.handed_over, args.handover_refused = send(records)
    return removed


def _configure_logging(args: argparse.Namespace) -> None:
    from keepvip.speaker.logs import configure_logging  # noqa: PLC0415 - only after a death: the parent stays small

    configure_logging(args.log_format, args.log_level)


def _told(ended: Exited, args: argparse.Namespace) -> int:
    """Log a speaker killed by a signal and what the parent sent and removed after it; the exit status.

    Logging is configured by then: the parent ran :func:`_remove_after_death` for that death.
    """
    if ended.signal is not None:
        import logging  # noqa: PLC0415 - only after a death: the parent stays small

        removed = [f"{leftover} from {ifname}" for ifname, leftover in ended.swept]
        log = logging.getLogger("keepvip.speaker.supervisor")
        log.error(
            "the speaker process was killed by %s; sent %d priority-0 advertisements for it, "
            "removed the %d VIPs it held: %s",
            ended.signal.name, args.handed_over, len(removed), ", ".join(removed) or "none",
            extra={"reason": "speaker_killed", "signal": ended.signal.name, "removed": removed,
                   "handed_over": args.handed_over},
        )  # fmt: skip
        if args.handover_refused or args.handover_malformed:
            log.warning(
                "priority 0 not sent for the killed speaker: %d refused by the kernel (%s), %s",
                len(args.handover_refused), "; ".join(sorted({str(e) for e in args.handover_refused})) or "-",
                "the rest of its table malformed" if args.handover_malformed else "its table whole",
                extra={"reason": "handover_incomplete"},
            )  # fmt: skip
    return ended.exit_code
