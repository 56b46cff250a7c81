"""keepalived.conf's lexical and block rules, with ``include`` resolved, never raising.

keepalived reads its configuration line by line (keepalived's ``parser.c``):

* ``!`` and ``#`` start a comment that runs to the end of the line, unless quoted;
* words are separated by whitespace; ``"`` and ``'`` quote (a quoted part may sit inside a
  word: ``ab"c d"e`` is the one word ``abc de``), keepalived.conf(5) "Quoted strings";
* ``{`` and ``}`` are words of their own even when written against another word;
* a statement is a keyword and its values up to the end of the line; a ``{`` at the end
  of it (or alone on the next line) opens a block that a matching ``}`` closes;
* ``include FILE`` (and the ``includer``/``includem``/... variants) reads more files at
  that place; FILE may be a glob and, when relative, is taken relative to the directory
  of the file that holds the ``include``.

A malformed file must never crash the converter: every problem becomes a
:class:`SyntaxProblem` with file, line and column, and parsing goes on with what can be
understood, so the report can still say what the rest of the file meant.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

_INCLUDES = frozenset({"include", "includer", "includem", "includew", "includeb"})
MAX_INCLUDE_DEPTH = 8  # keepalived's own limit is similar; beyond it an include cycle is likely
MAX_FILE_BYTES = 4 * 1024 * 1024  # a configuration is small; this bounds a mistaken argument


@dataclass(frozen=True)
class Location:
    """Where a word was written: the file as shown to the user, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Word:
    """One word of a line, quotes removed."""

    text: str
    location: Location


@dataclass
class Statement:
    """A keyword, its values, and the statements of its ``{}`` block (None: no block)."""

    keyword: Word
    values: list[Word] = field(default_factory=list)
    block: list[Statement] | None = None

    @property
    def name(self) -> str:
        """The keyword as written."""
        return self.keyword.text

    @property
    def location(self) -> Location:
        """Where the keyword was written."""
        return self.keyword.location

    def text(self) -> str:
        """The statement's line as keepalived understood it (for the report)."""
        return " ".join([self.keyword.text, *(v.text for v in self.values)])


@dataclass(frozen=True)
class SyntaxProblem:
    """Something keepalived's parser would reject or warn about, with its location."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class ParsedFile:
    """The statements of one configuration (includes expanded) and the problems found."""

    statements: list[Statement]
    problems: list[SyntaxProblem]
    files: list[str]  # every file read, as displayed, in reading order


_Line = list[Word]


def _split_line(text: str, file: str, number: int, problems: list[SyntaxProblem]) -> _Line:
    """Split one line into words (keepalived's quoting, comments and braces)."""
    words: _Line = []
    current: list[str] = []
    start = 0
    quote: str | None = None
    quote_column = 0
    in_word = False

    def finish() -> None:
        nonlocal in_word
        if in_word:
            words.append(Word("".join(current), Location(file, number, start + 1)))
            current.clear()
            in_word = False

    for column, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
            else:
                current.append(char)
            continue
        if char in "\"'":
            if not in_word:
                in_word, start = True, column
            quote, quote_column = char, column
        elif char in "!#":
            break
        elif char.isspace():
            finish()
        elif char in "{}":
            finish()
            words.append(Word(char, Location(file, number, column + 1)))
        else:
            if not in_word:
                in_word, start = True, column
            current.append(char)
    if quote is not None:
        problems.append(
            SyntaxProblem(Location(file, number, quote_column + 1), f"unterminated {quote} quote")
        )
    finish()
    return words


@dataclass
class _Reader:
    """Reads a file and its includes into a flat list of lines of words."""

    root: Path
    problems: list[SyntaxProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def display(self, path: Path) -> str:
        """The path as the report shows it: relative to the main file's directory when below it."""
        try:
            return os.path.relpath(path, self.root.parent) if path != self.root else self.root.name
        except ValueError:  # pragma: no cover - another drive on Windows
            return str(path)

    def read(self, path: Path, stack: tuple[Path, ...], at: Location | None) -> list[_Line]:
        shown = self.display(path)
        resolved = path.resolve()
        if resolved in stack:
            self.problems.append(SyntaxProblem(at or Location(shown, 1, 1), f"include loop: {shown}"))
            return []
        if len(stack) > MAX_INCLUDE_DEPTH:
            self.problems.append(
                SyntaxProblem(at or Location(shown, 1, 1), f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
            )
            return []
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise OSError(f"larger than {MAX_FILE_BYTES} bytes")
            data = path.read_bytes()
        except OSError as error:
            reason = error.strerror or str(error)
            self.problems.append(SyntaxProblem(at or Location(shown, 1, 1), f"cannot read {shown}: {reason}"))
            return []
        self.files.append(shown)
        text = data.decode("utf-8", errors="replace")
        if "\ufffd" in text:
            self.problems.append(SyntaxProblem(Location(shown, 1, 1), "not UTF-8 text (bytes replaced)"))
        lines: list[_Line] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            words = _split_line(raw.replace("\x00", " "), shown, number, self.problems)
            if words and words[0].text in _INCLUDES:
                lines.extend(self._include(path, words, (*stack, resolved)))
            elif words:
                lines.append(words)
        return lines

    def _include(self, path: Path, words: _Line, stack: tuple[Path, ...]) -> list[_Line]:
        keyword = words[0]
        if len(words) != 2:
            self.problems.append(
                SyntaxProblem(keyword.location, "include takes exactly one file name or glob")
            )
            return []
        pattern = words[1].text
        base = Path(pattern) if os.path.isabs(pattern) else path.parent / pattern
        matches = sorted(glob.glob(str(base)))
        if not matches:
            self.problems.append(SyntaxProblem(words[1].location, f"include {pattern}: no file matches"))
            return []
        lines: list[_Line] = []
        for match in matches:
            lines.extend(self.read(Path(match), stack, words[1].location))
        return lines


def _build(lines: list[_Line], problems: list[SyntaxProblem]) -> list[Statement]:
    """Turn lines of words into nested statements; stray and missing braces are problems."""
    top: list[Statement] = []
    stack: list[tuple[Statement, list[Statement]]] = []  # open blocks and their parent's list
    current = top
    last: Statement | None = None  # the previous statement, which a lone '{' line may open
    for line in lines:
        index = 0
        pending: Statement | None = None
        while index < len(line):
            word = line[index]
            if word.text == "{":
                owner = pending if pending is not None else last
                if owner is None or owner.block is not None:
                    problems.append(SyntaxProblem(word.location, "'{' without a keyword before it"))
                    owner = Statement(Word("(anonymous)", word.location))
                    current.append(owner)
                owner.block = []
                stack.append((owner, current))
                current, pending, last = owner.block, None, None
            elif word.text == "}":
                if not stack:
                    problems.append(SyntaxProblem(word.location, "'}' without a matching '{'"))
                else:
                    owner, current = stack.pop()
                    last = None
                pending = None
            elif pending is None:
                pending = Statement(word)
                current.append(pending)
                last = pending
            else:
                pending.values.append(word)
            index += 1
    for owner, _ in stack:
        problems.append(SyntaxProblem(owner.location, f"'{owner.name} {{' is never closed"))
    return top


def parse_file(path: Path) -> ParsedFile:
    """Read ``path`` (and what it includes) into statements; problems are collected, not raised."""
    reader = _Reader(path)
    lines = reader.read(path, (), None)
    statements = _build(lines, reader.problems)
    return ParsedFile(statements, reader.problems, reader.files)


def parse_text(text: str, name: str = "keepalived.conf") -> ParsedFile:
    """Parse configuration text with no includes (for tests and tools)."""
    problems: list[SyntaxProblem] = []
    lines = [w for n, raw in enumerate(text.splitlines(), 1) if (w := _split_line(raw, name, n, problems))]
    return ParsedFile(_build(lines, problems), problems, [name])
