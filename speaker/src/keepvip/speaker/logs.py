"""Logging for the speaker: one line per event, text for people or JSON for collectors.

Transitions are logged with structured fields (``virtualip``, ``node``, ``state``,
``reason``, ``priority``) passed as ``extra``; the JSON form carries them as keys, the
text form appends them as ``key=value`` so both are greppable.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Final

# Attributes every LogRecord has; anything else was passed through ``extra``.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """Send the process's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RateLimiter:
    """Says yes once per ``every`` seconds per key (RFC 9568 §7.1: log drops, rate-limited).

    A forged or misconfigured peer can send hundreds of packets a second; the counters
    count every one, the log tells each distinct problem at most every ``every`` seconds.
    Keys are ``(reason, detail...)``. Spoofed packets can make every key distinct (one
    source address each), so two bounds hold whatever arrives:

    * at most ``per_reason`` lines per reason (the key's first element) per ``every``
      seconds, however many distinct keys share that reason;
    * at most ``max_keys`` keys remembered: least recently used ones are forgotten first
      (memory stays flat under a flood of random sources; a forgotten key may be told
      again, within the per-reason budget).
    """

    def __init__(self, every: float = 10.0, *, per_reason: int = 5, max_keys: int = 1024) -> None:
        self.every = every
        self.per_reason = per_reason
        self.max_keys = max_keys
        self._last: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._budget: dict[str, tuple[float, int]] = {}  # reason -> (window start, lines told)

    def allow(self, key: tuple[str, ...], now: float) -> bool:
        """Whether to log the event ``key`` at monotonic time ``now``."""
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._last.move_to_end(key)
            return False
        reason = key[0] if key else ""
        start, told = self._budget.get(reason, (now, 0))
        if now - start >= self.every:
            start, told = now, 0
        if told >= self.per_reason:
            return False
        self._budget[reason] = (start, told + 1)
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True

    def __len__(self) -> int:
        """How many keys are remembered (bounded by ``max_keys``)."""
        return len(self._last)
