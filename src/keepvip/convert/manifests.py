"""Kubernetes manifests read from YAML files and folders, with where each field was written.

The LoadBalancer converters (MetalLB, kube-vip, Cilium) read what ``kubectl get -o yaml``
prints or what users keep in Git: multi-document YAML streams, ``kind: List`` wrappers,
folders of such files. The report must name the place of every field it could not map,
so each document keeps a map from a field path (``spec.addresses[1]``) to its file, line
and column, taken from PyYAML's composed node tree (the values come from the same text
through ``safe_load_all``, so the two always agree).

Nothing here raises on bad input: an unreadable file, a YAML syntax error or a document
that is not a Kubernetes object becomes a :class:`Problem` with its place, and the
other documents are still read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keepvip.convert.syntax import MAX_FILE_BYTES, Location

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_KEYED = re.compile(r"\[([^\]0-9][^\]]*)\]")
"""``annotations[keepvip.io/pool]``: a map key written as an index, for keys holding dots."""


@dataclass(frozen=True)
class Problem:
    """Input that could not be read as a manifest."""

    location: Location
    detail: str


@dataclass
class Manifest:
    """One Kubernetes object and where its fields were written."""

    body: dict[str, Any]
    origin: Location
    marks: dict[str, Location] = field(default_factory=dict)
    text: str = ""
    """The whole file the manifest was read from (for fields that hold YAML themselves)."""

    @property
    def kind(self) -> str:
        """``kind`` (empty when absent)."""
        return str(self.body.get("kind") or "")

    @property
    def api_group(self) -> str:
        """The group of ``apiVersion`` (``metallb.io``; empty for the core group)."""
        version = str(self.body.get("apiVersion") or "")
        return version.rpartition("/")[0]

    @property
    def metadata(self) -> dict[str, Any]:
        """``metadata`` (empty when absent or not a mapping)."""
        value = self.body.get("metadata")
        return value if isinstance(value, dict) else {}

    @property
    def name(self) -> str:
        """``metadata.name`` (empty when absent)."""
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` (empty when absent)."""
        return str(self.metadata.get("namespace") or "")

    @property
    def ref(self) -> str:
        """``Kind/name`` (``Kind/namespace/name`` for a namespaced object that names one)."""
        scope = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind or '?'}/{scope}{self.name or '?'}"

    def at(self, path: str) -> Location:
        """Where ``path`` was written; the nearest written parent when it was not."""
        path = _KEYED.sub(r".\1", path)
        while path:
            found = self.marks.get(path)
            if found is not None:
                return found
            cut = max(path.rfind("."), path.rfind("["), path.rfind(":"))
            path = path[:cut] if cut > 0 else ""
        return self.origin


@dataclass
class Loaded:
    """Every manifest of the inputs, and every problem met."""

    manifests: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _marks(node: yaml.Node, path: str, file: str, into: dict[str, Location]) -> None:
    into[path] = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            _marks(value, f"{path}.{name}" if path else name, file, into)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _marks(item, f"{path}[{index}]", file, into)


def marks_of(node: yaml.Node, file: str, prefix: str = "") -> dict[str, Location]:
    """Every field path under ``node`` → where it was written."""
    found: dict[str, Location] = {}
    _marks(node, prefix, file, found)
    return found


def embedded(manifest: Manifest, path: str, text: str) -> tuple[Any, dict[str, Location]] | Problem:
    """A YAML document written as a string field (MetalLB's ConfigMap ``data.config``).

    Inner places are mapped back onto the file when the string is a block scalar
    (``config: |``): its content starts on the line after the indicator, at the
    indentation of that line. A quoted or plain string maps every inner field to the
    string's own place. Inner paths are written ``data.config:address-pools[0].name``.
    """
    outer = manifest.at(path)
    lines = manifest.text.splitlines()
    indicator = lines[outer.line - 1][outer.column - 1 : outer.column] if 0 < outer.line <= len(lines) else ""
    block = indicator in ("|", ">")
    indent = 0
    if block and outer.line < len(lines):
        content = lines[outer.line]
        indent = len(content) - len(content.lstrip(" "))
    try:
        value = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = outer.line + (mark.line + 1 if mark is not None and block else 0)
        reason = getattr(error, "problem", None) or str(error)
        return Problem(Location(outer.file, line, outer.column), f"{path}: not YAML: {reason}")
    if node is None:
        return value, {}
    mapped: dict[str, Location] = {}
    for key, mark in marks_of(node, outer.file).items():
        where = Location(outer.file, outer.line + mark.line, indent + mark.column) if block else outer
        mapped[f"{path}:{key}" if key else path] = where
    return value, mapped


def _documents(text: str, file: str, loaded: Loaded) -> None:
    try:
        values = list(yaml.safe_load_all(text))
        nodes = list(yaml.compose_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file, 1, 1)
        reason = getattr(error, "problem", None) or str(error)
        loaded.problems.append(Problem(where, f"not YAML: {reason}"))
        return
    for value, node in zip(values, nodes, strict=True):  # one stream read twice: same documents
        if value is None or node is None:
            continue  # an empty document (a stray ---)
        origin = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
        if not isinstance(value, dict):
            loaded.problems.append(Problem(origin, "a document that is not a mapping (a Kubernetes object)"))
            continue
        marks = marks_of(node, file)
        if value.get("kind") == "List" or str(value.get("kind", "")).endswith("List"):
            items = value.get("items")
            if not isinstance(items, list):
                loaded.problems.append(Problem(origin, f"{value.get('kind')} without an items list"))
                continue
            for index, item in enumerate(items):
                prefix = f"items[{index}]"
                where = marks.get(prefix, origin)
                if not isinstance(item, dict):
                    loaded.problems.append(Problem(where, f"{prefix} is not a Kubernetes object"))
                    continue
                inner = {k[len(prefix) + 1 :]: v for k, v in marks.items() if k.startswith(prefix + ".")}
                loaded.manifests.append(Manifest(item, where, inner, text))
            continue
        loaded.manifests.append(Manifest(value, origin, marks, text))


def _files(path: Path) -> Iterable[tuple[Path, str]]:
    """The YAML files of ``path`` and their names as shown (a folder's files sorted, recursively)."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES):
            yield file, f"{path.name}/{file.relative_to(path).as_posix()}"
    else:
        yield path, path.name


def load(paths: list[Path]) -> Loaded:
    """Every manifest of ``paths`` (files or folders), in the order given."""
    loaded = Loaded()
    for path in paths:
        if not path.exists():
            loaded.problems.append(Problem(Location(str(path), 0, 0), "no such file or folder"))
            continue
        for file, shown in _files(path):
            try:
                if file.stat().st_size > MAX_FILE_BYTES:
                    loaded.problems.append(
                        Problem(Location(shown, 0, 0), "larger than 4 MiB: not a manifest")
                    )
                    continue
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                loaded.problems.append(Problem(Location(shown, 0, 0), f"cannot be read: {error}"))
                continue
            _documents(text, shown, loaded)
    return loaded
