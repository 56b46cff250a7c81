"""Field descriptions from attribute docstrings, read only when a schema is generated.

The API classes document each field with a string literal right under it (an
"attribute docstring"); the CRD carries them as descriptions (``kubectl explain``).
pydantic can read them itself (``use_attribute_docstrings``), but it does so while each
class is created: for every API class, at every import of the model, it finds the
class's source and parses it — ~25 ms of CPU at each start of every speaker and
operator (issue 15, startup), for text only the CRD generator uses.

`DescribedFields` reads them when a JSON schema is generated instead, by pydantic's
rule, so the schema is the one ``use_attribute_docstrings`` gave: a field's description
is the string literal right after its annotated assignment in the class that declares
it (the first class in the MRO whose body annotates it), an explicit
``Field(description=...)`` wins, and the text is :func:`inspect.cleandoc`-ed.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema


class DescribedFields(GenerateJsonSchema):
    """pydantic's JSON schema generator, with each model field's attribute docstring as
    its description (pass as ``model_json_schema(schema_generator=DescribedFields)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._models: list[type[Any]] = []  # the model whose fields are being generated

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        self._models.append(schema["cls"])
        try:
            return super().model_schema(schema)
        finally:
            self._models.pop()

    def model_fields_schema(self, schema: core_schema.ModelFieldsSchema) -> JsonSchemaValue:
        if self._models:
            model = self._models[-1]
            items = schema["fields"].items()
            fields = {name: _described(field, field_docstring(model, name)) for name, field in items}
            schema = {**schema, "fields": fields}
        return super().model_fields_schema(schema)


def _described(field: core_schema.ModelField, docstring: str | None) -> core_schema.ModelField:
    """The field with ``docstring`` as its JSON schema description, where pydantic puts a
    field's ``description`` (a copy: the model's own core schema is not touched)."""
    if docstring is None:
        return field
    metadata = dict(field.get("metadata") or {})
    explicit = metadata.get("pydantic_js_updates") or {}  # Field(description=...) wins
    metadata["pydantic_js_updates"] = {"description": docstring, **explicit}
    return {**field, "metadata": metadata}


def field_docstring(model: type[Any], name: str) -> str | None:
    """The attribute docstring of field ``name`` of ``model``, from the class that declares it."""
    for klass in model.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return class_docstrings(klass).get(name)
    return None


@functools.cache
def class_docstrings(klass: type[Any]) -> dict[str, str]:
    """Attribute name → docstring, for the attributes annotated in ``klass``'s own body."""
    node: ast.AST | None = _module_tree(klass.__module__)
    for part in klass.__qualname__.split("."):
        classes = [child for child in getattr(node, "body", ()) if isinstance(child, ast.ClassDef)]
        node = next((child for child in reversed(classes) if child.name == part), None)  # the last one binds
    if not isinstance(node, ast.ClassDef):
        return {}
    found: dict[str, str] = {}
    for statement, following in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


@functools.cache
def _module_tree(module: str) -> ast.Module:
    return ast.parse(inspect.getsource(sys.modules[module]))
