"""Ranges the VirtualIP model and the VRRP core must agree on, defined once.

Admission (the model) must never accept a value the speaker's VRRP core then refuses:
the object would be stored, and every speaker would fail it. The core
(:mod:`keepvip.speaker.vrrp.config`) may not import ``keepvip.api``: the bound both need lives in
:mod:`keepvip.inet`, below both;
``tests/unit/test_ranges_agree.py`` checks every shared bound from both sides.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from keepvip.inet import PREEMPT_DELAY_MAX_S

PREEMPT_DELAY_MAX: Final = timedelta(seconds=PREEMPT_DELAY_MAX_S)

# Health checks and the arbiter: a probe period or timeout beyond an hour is a typo, and
# socket timeouts or timers of the platform overflow long before timedelta does.
PROBE_DURATION_MAX: Final = timedelta(hours=1)

# The longest duration string read at all: "1h2m3s4ms5us" is 12 characters; 64 leaves
# room for any honest spelling and keeps a 1 MB value out of the parser.
DURATION_TEXT_MAX: Final = 64

# How much of a refused value an error message quotes.
SHOWN_VALUE_MAX: Final = 64
