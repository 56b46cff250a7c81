"""keepalived.conf's lexical rules, includes, and the promise never to raise on bad input."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip.convert.command import convert_keepalived
from keepvip.convert.syntax import parse_file, parse_text


def words(text: str) -> list[list[str]]:
    return [[s.name, *(v.text for v in s.values)] for s in parse_text(text).statements]


def test_comments_quotes_and_braces_follow_keepalived() -> None:
    parsed = parse_text("vrrp_script chk{\n script \"/bin/sh -c 'a # b'\"  ! comment\n weight -2 # c\n}\n")
    assert parsed.problems == []
    (script,) = parsed.statements
    assert script.values[0].text == "chk"
    assert [[c.name, *(v.text for v in c.values)] for c in script.block or []] == [
        ["script", "/bin/sh -c 'a # b'"],
        ["weight", "-2"],
    ]


def test_a_quoted_part_inside_a_word_joins_it() -> None:
    assert words("auth_pass ab\"c d\"e 'f g'\n") == [["auth_pass", "abc de", "f g"]]


def test_a_brace_alone_on_the_next_line_opens_the_block() -> None:
    (instance,) = parse_text("vrrp_instance VI_1\n{\n  priority 100\n}\n").statements
    assert instance.block is not None
    assert instance.block[0].name == "priority"


def test_one_line_blocks() -> None:
    (instance,) = parse_text("vrrp_instance A { track_script { chk } priority 9 }\n").statements
    assert [s.name for s in instance.block or []] == ["track_script", "priority"]


def test_problems_carry_file_line_and_column() -> None:
    problems = [str(p) for p in parse_text('x {\n  y "open\n}\n}\n', "k.conf").problems]
    assert problems == ['k.conf:2:5: unterminated " quote', "k.conf:4:1: '}' without a matching '{'"]


def test_includes_are_globbed_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "etc" / "conf.d").mkdir(parents=True)
    main = tmp_path / "etc" / "keepalived.conf"
    main.write_text("include conf.d/*.conf\nlast 1\n")
    (tmp_path / "etc" / "conf.d" / "b.conf").write_text("second 2\n")
    (tmp_path / "etc" / "conf.d" / "a.conf").write_text("first 1\ninclude ../keepalived.conf\n")
    parsed = parse_file(main)
    assert [s.name for s in parsed.statements] == ["first", "second", "last"]
    assert parsed.files == ["keepalived.conf", "conf.d/a.conf", "conf.d/b.conf"]
    assert [str(p) for p in parsed.problems] == ["conf.d/a.conf:2:9: include loop: keepalived.conf"]
    assert str(parsed.statements[1].location) == "conf.d/b.conf:1:1"


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path / "absent.conf")
    assert parsed.statements == []
    assert "cannot read" in str(parsed.problems[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab {}\"'!#\n\t\\;/0.1", "vrrp_instance", "include"])).map("".join))
def test_any_text_parses_without_raising(text: str) -> None:
    parse_text(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_convert_without_raising(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.conf"
        path.write_bytes(data)
        convert_keepalived([("node1", path), ("node2", path)]).report.render()
