"""The conversion report: what became of every keyword, never silently.

Each entry names the node, where the keyword was written, what it said, and an
:class:`Outcome` (a fixed set of names, like every rejection in keepvip) with the field
it became or the reason it was not converted. The text form is stable (sorted by node
and location) so golden tests can compare it byte for byte.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from keepvip.convert.syntax import Location


class Outcome(enum.StrEnum):
    """What became of one keyword."""

    CONVERTED = "converted"  # has an exact keepvip equivalent
    NOTE = "note"  # converted, with a difference the user must know about
    DROPPED = "dropped"  # has no effect in keepvip (reason given)
    UNSUPPORTED = "unsupported"  # means something keepvip cannot do yet (reason given)
    REFUSED = "refused"  # has no meaning for keepvip (what to use instead given)
    ERROR = "error"  # malformed or contradictory input (file, line and column given)


@dataclass(frozen=True)
class Entry:
    """One line of the report."""

    node: str
    location: Location | None
    keyword: str
    outcome: Outcome
    detail: str

    def render(self) -> str:
        """``node file:line:col [outcome] keyword: detail``."""
        where = f" {self.location}" if self.location is not None else ""
        return f"{self.node}{where} [{self.outcome.value}] {self.keyword}: {self.detail}"


def _order(entry: Entry) -> tuple[str, str, int, int, str]:
    location = entry.location
    if location is None:
        return (entry.node, "~", 0, 0, entry.keyword)
    return (entry.node, location.file, location.line, location.column, entry.keyword)


@dataclass
class Report:
    """Every entry of one conversion."""

    entries: list[Entry] = field(default_factory=list)

    def add(self, node: str, location: Location | None, keyword: str, outcome: Outcome, detail: str) -> None:
        """Record what became of ``keyword``."""
        self.entries.append(Entry(node, location, keyword, outcome, detail))

    def count(self, outcome: Outcome) -> int:
        """How many entries have ``outcome``."""
        return sum(1 for e in self.entries if e.outcome is outcome)

    @property
    def failed(self) -> bool:
        """Whether something could not be read or converted (exit status 1)."""
        return self.count(Outcome.ERROR) > 0

    def summary(self) -> str:
        """One line: how many keywords had each outcome."""
        counts = Counter(e.outcome for e in self.entries)
        return ", ".join(f"{counts[o]} {o.value}" for o in Outcome)

    def render(self) -> str:
        """The whole report: one line per entry, sorted, then the summary."""
        lines = [e.render() for e in sorted(self.entries, key=_order)]
        return "\n".join([*lines, f"summary: {self.summary()}", ""])
