"""The configuration file is polled by its metadata, not read every second (issue 15).

At 1,000 VirtualIPs the file is ~250 KiB: reading and hashing it at every poll was
periodic work for nothing. It is now read only when its metadata (device, inode,
size, mtime, ctime) moved, or while it is too fresh for them to be trusted; a change
is still found, also one that keeps the size (and an editor's replacement).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from keepvip.speaker.sources import file as file_source
from keepvip.speaker.sources.file import FileSource

OLD = 1_000_000_000  # seconds since the epoch: long settled


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = file_source._digest

    def digest(path: Path) -> bytes | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(file_source, "_digest", digest)
    monkeypatch.setattr(file_source, "POLL_SECONDS", 0.01)
    return reads


async def changed_within(source: FileSource, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await source._changed()
    except TimeoutError:
        return False
    return True


def test_a_settled_unchanged_file_is_not_read_at_each_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "virtualips.yaml"
    path.write_text("a: 1\n")
    os.utime(path, (OLD, OLD))
    reads = counting_reads(monkeypatch)
    source = FileSource(path)
    reads.clear()
    assert not asyncio.run(changed_within(source, 0.3))  # ~30 polls
    assert reads == []


def test_a_change_of_the_same_size_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "virtualips.yaml"
    path.write_text("a: 1\n")
    os.utime(path, (OLD, OLD))
    counting_reads(monkeypatch)
    source = FileSource(path)

    async def story() -> bool:
        poll = asyncio.create_task(changed_within(source, 5))
        await asyncio.sleep(0.05)
        path.write_text("a: 2\n")  # same size, in place
        return await poll

    assert asyncio.run(story())


def test_a_fresh_file_is_read_even_with_its_metadata_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coarse clock: a second same-size write in the same tick leaves the metadata as it was."""
    path = tmp_path / "virtualips.yaml"
    path.write_text("a: 1\n")
    stat = path.stat()
    reads = counting_reads(monkeypatch)
    source = FileSource(path)

    async def story() -> bool:
        poll = asyncio.create_task(changed_within(source, 1))
        await asyncio.sleep(0.05)
        path.write_text("a: 2\n")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same mtime as before
        return await poll

    assert asyncio.run(story())
    assert reads
