"""Attribute docstrings become descriptions when the schema is generated, by pydantic's rule.

The oracle is pydantic itself: the same classes, once with ``use_attribute_docstrings``
and the stock generator, once without it and with ``DescribedFields``, give the same
schema (the CRD test checks the same for the real API, byte for byte).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from keepvip.api.field_docs import DescribedFields
from keepvip.api.model import ApiModel, VirtualIPSpec

SOURCE = '''
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Base(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=DOCS)

    name: str
    """The name.

        Indented continuation lines are cleaned like a docstring.
    """
    size: int = 1
    """Inherited unless redeclared."""
    colour: str = "red"
    """Redeclared below without a docstring: then it has none."""


class Inner(Base):
    """An inner object (its class docstring describes the object)."""

    depth: int = Field(default=0, description="An explicit description wins.")
    """Not this one."""
    colour: str = "blue"
    plain: bool = False
    "A single-quoted docstring after a defaulted field."


class Outer(Base):
    """The outer object."""

    inner: Inner
    """A nested model: the field's docstring replaces the class's."""
    maybe: Inner | None = None
    """An optional nested model."""
    items: list[Inner] = []
    undocumented: int = 0
    _hidden = 3
    "A string after a plain assignment is no attribute docstring."
'''


def load(tmp_path: Path, name: str, docs: bool) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(SOURCE.replace("DOCS", str(docs)))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect finds a module's source through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[ModuleType, ModuleType]]:
    try:
        yield load(tmp_path, "docs_by_pydantic", True), load(tmp_path, "docs_on_demand", False)
    finally:
        sys.modules.pop("docs_by_pydantic", None)
        sys.modules.pop("docs_on_demand", None)


def descriptions(schema: dict[str, Any]) -> list[str]:
    found = [schema["description"]] if isinstance(schema.get("description"), str) else []
    for value in schema.values():
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict):
                found += descriptions(child)
    return found


@pytest.mark.parametrize("model", ["Outer", "Inner", "Base"])
@pytest.mark.parametrize("by_alias", [True, False])
def test_the_schema_is_the_one_pydantic_gives_with_use_attribute_docstrings(
    twins: tuple[ModuleType, ModuleType], model: str, by_alias: bool
) -> None:
    by_pydantic, on_demand = twins
    expected = getattr(by_pydantic, model).model_json_schema(by_alias=by_alias)
    schema = getattr(on_demand, model).model_json_schema(by_alias=by_alias, schema_generator=DescribedFields)
    assert schema == expected
    assert json.dumps(schema) == json.dumps(expected)  # the same key order too: the CRD's YAML keeps it
    assert "The name.\n\nIndented continuation lines are cleaned like a docstring." in descriptions(schema)


def test_the_rule_field_by_field(twins: tuple[ModuleType, ModuleType]) -> None:
    _, on_demand = twins
    schema = on_demand.Outer.model_json_schema(schema_generator=DescribedFields)
    inner = schema["$defs"]["Inner"]["properties"]
    assert inner["size"]["description"] == "Inherited unless redeclared."
    assert "description" not in inner["colour"]  # redeclared without a docstring
    assert inner["depth"]["description"] == "An explicit description wins."
    assert inner["plain"]["description"] == "A single-quoted docstring after a defaulted field."
    outer = schema["properties"]
    assert outer["inner"]["description"] == "A nested model: the field's docstring replaces the class's."
    assert "description" not in outer["undocumented"]
    assert "_hidden" not in outer
    assert schema["$defs"]["Inner"]["description"].startswith("An inner object")


def test_without_the_generator_no_field_has_a_description(twins: tuple[ModuleType, ModuleType]) -> None:
    _, on_demand = twins
    assert sorted(descriptions(on_demand.Outer.model_json_schema())) == [
        "An explicit description wins.",
        "An inner object (its class docstring describes the object).",
        "The outer object.",
    ]


def test_the_api_model_does_not_read_its_docstrings_at_import() -> None:
    """Creating the API classes does not parse their source (issue 15, startup CPU): the
    fields carry no description until the CRD generator asks for one."""
    assert not ApiModel.model_config.get("use_attribute_docstrings")
    assert all(field.description is None for field in VirtualIPSpec.model_fields.values())
    model: type[BaseModel] = VirtualIPSpec
    assert descriptions(model.model_json_schema(schema_generator=DescribedFields))
