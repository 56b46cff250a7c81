"""The speaker's long-lived objects leave the garbage collector's work (issue 15, lateness).

A full (generation-2) collection walks every tracked object: at 1,000 VirtualIPs that is
~150,000 objects (models, plans, routers, metric children), and on the benchmark's loaded
machine such passes took 0.2-2 s of wall time during a start (measured with
``gc.callbacks`` on the speakers of ``bench/speaker_cpu.py --cells 1000@1``), while every
router's advertisements waited. After an apply that started routers, what exists is what
the speaker runs on until the next change, so it is moved out of the collector's reach
(``gc.freeze``, CPython's permanent generation): later collections walk only what was
allocated since, a few objects.

Frozen objects are never collected, so an apply that *stopped* routers first thaws
everything and collects once (one full pass, at a configuration change, when the stopped
routers' reference cycles are garbage), then freezes what is left: stopped routers do not
leak, and the pause happens when the operator changed something, not in steady state.
"""

from __future__ import annotations

import gc


def settle(*, stopped: bool) -> None:
    """After an apply that changed the running routers; ``stopped``: it stopped some."""
    if stopped:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
