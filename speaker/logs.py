"""Logging for the speaker: one line per event, text for people or JSON for collectors.

Transitions are logged with structured fields (``virtualip``, ``node``, ``state``,
``reason``, ``priority``) passed as ``extra``; the JSON form carries them as keys, the
text form appends them as ``key=value`` so both are greppable.
"""

from __future__ import annotations

import json
import logging
import sys
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
    """

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[tuple[str, ...], float] = {}

    def allow(self, key: tuple[str, ...], now: float) -> bool:
        """Whether to log the event ``key`` at monotonic time ``now``."""
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        return True
