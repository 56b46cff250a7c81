"""Speaker logging: structured fields in both formats, and rate-limited drop reports."""

from __future__ import annotations

import json
import logging

from keepvip.speaker.logs import JsonFormatter, RateLimiter, TextFormatter


def record(**fields: object) -> logging.LogRecord:
    item = logging.LogRecord(
        "keepvip.speaker.router", logging.INFO, __file__, 1, "node-b MASTER: %s", ("x",), None
    )
    for key, value in fields.items():
        setattr(item, key, value)
    return item


def test_json_lines_carry_the_message_and_the_structured_fields() -> None:
    line = JsonFormatter().format(record(virtualip="web", state="MASTER", reason="master_down_timer"))
    entry = json.loads(line)
    assert entry["message"] == "node-b MASTER: x"
    assert (entry["virtualip"], entry["state"], entry["reason"]) == ("web", "MASTER", "master_down_timer")
    assert entry["level"] == "INFO"


def test_text_lines_append_the_fields_as_key_value() -> None:
    line = TextFormatter().format(record(virtualip="web", state="MASTER"))
    assert line.endswith("node-b MASTER: x virtualip=web state=MASTER")


def test_a_repeated_drop_is_logged_once_per_period_per_reason_and_sender() -> None:
    limiter = RateLimiter(every=10.0)
    assert limiter.allow(("bad_ttl", "198.18.0.9"), 100.0)
    assert not limiter.allow(("bad_ttl", "198.18.0.9"), 105.0)
    assert limiter.allow(("bad_checksum", "198.18.0.9"), 105.0)
    assert limiter.allow(("bad_ttl", "198.18.0.8"), 105.0)
    assert limiter.allow(("bad_ttl", "198.18.0.9"), 110.0)
