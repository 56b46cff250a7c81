"""The standalone loader never crashes: any bytes give a snapshot or `InvalidConfigFile`.

Each refusal names the document (its index in the stream) and the field, or the line
for what is wrong before documents exist (encoding, nesting, duplicate keys). A reload
of such a file keeps the running configuration: `FileSource` yields nothing for it.
"""

from __future__ import annotations

import asyncio
import codecs
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keepvip.speaker.sources.file import (
    FileSource,
    InvalidConfigFile,
    load_config_file,
    parse_config_bytes,
    parse_config_text,
)
from keepvip.speaker.sources.snapshot import ConfigSnapshot

VIP = """apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: [198.18.0.100/24]
  preemptDelay: 2s
  vrrp:
    version: 2
    vrid: 51
    authentication: {type: PASS, secretRef: {namespace: default, name: vrrp, key: pw}}
  healthChecks:
  - {name: api, http: {port: 8080, path: /healthz, expectedStatuses: [200, 204]}, weight: -20}
"""
PW_DOC = """apiVersion: v1
kind: Secret
metadata: {name: vrrp}
stringData: {pw: s3cret}
"""
VALID = VIP + "---\n" + PW_DOC
PW_HEAD = "apiVersion: v1\nkind: Secret\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def write(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "keepvip.yaml"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes(range(256)) * 4, r"not UTF-8 text \(byte 128 is 0x80\): a binary file\?"),
        (VALID.encode("utf-16"), "UTF-16 or UTF-32 text: save it as UTF-8"),
        (codecs.BOM_UTF16_BE + VALID.encode("utf-16-be"), "UTF-16"),
        (("a: " + "[" * 1000 + "]" * 1000).encode(), "nested deeper than 64 levels at line 1"),
        (("a: " + "{b: " * 800 + "c" + "}" * 800).encode(), "nested deeper than 64 levels"),
        ((VIP.replace("preemptDelay: 2s", "preemptDelay: 100000000000h")).encode(),
         r"document 0: VirtualIP 'web' is invalid: spec\.preemptDelay: .* longer than any duration"),
        ((VIP.replace("vrid: 51", "vrid: 51\n    vrid: 52")).encode(), r"found the key 'vrid' twice"),
        ((VIP + "metadata: {name: other}\n").encode(), r"found the key 'metadata' twice"),
        (VIP.replace("apiVersion: keepvip.io/v1alpha1\n", "").encode(),
         r"document 0 \(VirtualIP\): apiVersion is required \(keepvip\.io/v1alpha1"),
        (PW_DOC.replace("apiVersion: v1\n", "").encode(), r"document 0 \(Secret\): apiVersion is required"),
        ((VIP + "---\n" + PW_HEAD + "metadata: [vrrp]\n").encode(),
         r"document 1 \(Secret\): metadata must be a mapping with a name, not a list"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\nstringData: [pw, s3cret]\n").encode(),
         r"document 1 \(Secret default/vrrp\): stringData must be a mapping of keys to strings, not a list"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\ndata: czNjcmV0\n").encode(),
         r"document 1 \(Secret default/vrrp\): data must be a mapping of keys to strings, not a string"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\nstringData: {pw: {a: b}}\n").encode(),
         r"document 1 \(Secret default/vrrp\): stringData\.pw must be a string, not a mapping"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\ndata: {pw: {a: b}}\n").encode(),
         r"document 1 \(Secret default/vrrp\): data\.pw must be a string, not a mapping"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\nstringData: {pw: [s3cret]}\n").encode(),
         r"document 1 \(Secret default/vrrp\): stringData\.pw must be a string, not a list"),
        ((VIP + "---\n" + PW_DOC.replace("s3cret", "''")).encode(),
         r"document 0: VirtualIP 'web': spec\.vrrp\.authentication\.secretRef: key 'pw' of Secret "
         r"default/vrrp is empty, and an empty PASS password means no authentication"),
        ((VIP + "---\n" + PW_HEAD + "metadata: {name: vrrp}\ndata: {pw: ''}\n").encode(), "is empty"),
        ((VALID + "---\n" + PW_DOC).encode(), r"document 2 \(Secret\): default/vrrp is defined twice"),
        (b"date: 2024-13-45\n", "not valid YAML: month must be in 1..12"),
        (("priority: " + "9" * 5000).encode(), "not valid YAML: Exceeds the limit"),
        (b"a: !!python/object:os.system {}\n", "not valid YAML: could not determine a constructor"),
        (("a: !" + "x" * 100_000 + " b\n").encode(), "not valid YAML"),
        (BOMB.encode(), "document 0: more than 200000 values once aliases are expanded"),
        ((VIP.replace("[198.18.0.100/24]", "[" + "a" * 1_000_000 + "]")).encode(),
         r"document 0: VirtualIP 'web' is invalid: spec\.addresses\[0\]: 'aaaa"),
        (b"\x00", "not valid YAML"),
        (b"- 1\n", "document 0: expected a mapping, got 1|document 0: expected a mapping, got a list"),
    ],
)  # fmt: skip
def test_each_file_that_used_to_crash_or_pass_is_refused_naming_where(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidConfigFile, match=message) as refused:
        load_config_file(write(tmp_path, raw))
    assert len(str(refused.value)) < 1000  # a 1 MB value is never echoed back


def test_a_file_larger_than_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigFile, match="more than the 4194304 read"):
        load_config_file(write(tmp_path, b"#" * (5 * 1024 * 1024)))


def test_yaml_merge_keys_still_work_and_are_not_duplicates() -> None:
    text = (
        VALID.replace("  preemptDelay: 2s\n", "")
        + "---\n"
        + PW_HEAD
        + ("metadata: {name: other}\nstringData:\n  base: &base {pw: a, extra: b}\n  <<: *base\n")
    )
    with pytest.raises(InvalidConfigFile, match=r"stringData\.base must be a string"):
        parse_config_text(text)  # merged, then refused for the mapping value, not for duplicates


async def _reload_story(path: Path) -> tuple[list[bool], list[ConfigSnapshot]]:
    """Feed every bad file to a running FileSource, then a good one; collect what it yields."""
    results: list[bool] = []
    yielded: list[ConfigSnapshot] = []
    source = FileSource(path, on_result=results.append)

    async def consume() -> None:
        async for snapshot in source.snapshots():
            yielded.append(snapshot)

    task = asyncio.create_task(consume())
    try:
        for raw in (bytes(range(256)), VALID.encode("utf-16"), b"a: " + b"[" * 1000, (VIP + VIP).encode()):
            path.write_bytes(raw)
            before = len(results)
            source.reload()
            async with asyncio.timeout(5):
                while len(results) == before:
                    await asyncio.sleep(0.01)
        path.write_text(VALID.replace("vrid: 51", "vrid: 52"))
        source.reload()
        async with asyncio.timeout(5):
            while not yielded:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    return results, yielded


def test_a_reload_of_a_refused_file_yields_nothing_and_the_next_good_file_applies(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.encode())
    results, yielded = asyncio.run(_reload_story(path))
    assert results == [False, False, False, False, True]
    assert len(yielded) == 1  # the running configuration was never replaced by a refused file
    assert yielded[0].virtualips[0].spec.vrrp.vrid == 52


# --- Property: random mutations of a valid file never raise anything but InvalidConfigFile.

REPLACEMENTS = st.sampled_from(
    [None, True, 0, -1, 2**70, 1.5, float("inf"), "", "x" * 300, "y" * 100_000, [], {}, [[[]]],
     {"a": {"b": [1]}}, "100000000000h", "ff02::12%eth0", "0.0.0.0/0", "\x00", "é" * 20, [1, "a", None]]
)  # fmt: skip


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(value: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replaced(v, rest, new) if k == head else v) for k, v in value.items()}
    assert isinstance(value, list)
    return [(_replaced(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def _outcome(raw: bytes) -> None:
    try:
        snapshot: ConfigSnapshot | str = parse_config_bytes(raw)
    except InvalidConfigFile as error:
        snapshot = str(error)
    if isinstance(snapshot, str):
        assert 0 < len(snapshot) < 2000  # a reason, and a short one


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structural_mutations_never_raise_anything_but_the_loaders_error(data: st.DataObject) -> None:
    documents = list(yaml.safe_load_all(VALID))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(documents) - 1))
        path = data.draw(st.sampled_from(_paths(documents[index])))
        documents[index] = _replaced(documents[index], path, data.draw(REPLACEMENTS))
    _outcome(yaml.safe_dump_all(documents, allow_unicode=True).encode())


INSERTS = [b"[", b"{", b"&a ", b"*a", b":", b"- ", b"\n  ", b"\t", b"!!", b"---\n", b"\xff\xfe", b"'", b"\\"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_byte_mutations_never_raise_anything_but_the_loaders_error(data: st.DataObject) -> None:
    raw = bytearray(VALID.encode())
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "repeat"]))
        if action == "flip" and position < len(raw):
            raw[position] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[position:position] = data.draw(st.sampled_from(INSERTS))
        elif action == "delete":
            del raw[position : position + data.draw(st.integers(1, 20))]
        else:
            raw[position:position] = raw[position : position + data.draw(st.integers(1, 40))]
    _outcome(bytes(raw))
