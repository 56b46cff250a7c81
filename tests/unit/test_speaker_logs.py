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


def test_a_flood_from_random_sources_keeps_memory_flat_and_logs_a_few_lines_per_reason() -> None:
    limiter = RateLimiter(every=10.0, per_reason=5, max_keys=1024)
    told = [
        (second, reason)
        for second in range(60)
        for n in range(2000)  # 2,000 spoofed sources a second, every one new
        for reason in ("bad_ttl", "foreign_vrid")
        if limiter.allow((reason, f"198.18.{n // 250}.{n % 250}:{second}"), second + n / 2000)
    ]
    assert len(limiter) <= 1024
    for reason in ("bad_ttl", "foreign_vrid"):
        lines = [second for second, r in told if r == reason]
        assert len(lines) == 6 * 5  # five per ten-second window, six windows
        assert all(lines.count(s) <= 5 for s in set(lines))


def test_a_forgotten_key_can_be_told_again_and_a_remembered_one_cannot() -> None:
    limiter = RateLimiter(every=10.0, per_reason=100, max_keys=2)
    assert limiter.allow(("r", "a"), 0.0)
    assert limiter.allow(("r", "b"), 0.1)
    assert not limiter.allow(("r", "a"), 0.2)  # remembered (and now most recently used)
    assert limiter.allow(("r", "c"), 0.3)  # evicts b, the least recently used
    assert limiter.allow(("r", "b"), 0.4)
    assert len(limiter) == 2
