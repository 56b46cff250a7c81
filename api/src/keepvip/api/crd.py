"""Generate the VirtualIP CustomResourceDefinition from the typed model.

The CRD's structural OpenAPI v3 schema is derived from pydantic's JSON schema, so the
model stays the one source of truth (``kubectl explain`` shows the same descriptions: the
fields' attribute docstrings, read by :class:`keepvip.api.field_docs.DescribedFields`).
Kubernetes' structural-schema rules need a few rewrites: ``$ref`` inlined, optional
unions collapsed, ``const`` turned into ``enum``, no ``additionalProperties: false``
(the API server prunes unknown fields instead), no ``title``. Cross-field rules are not
expressed as CEL (v1.20 drops ``x-kubernetes-validations``); the admission webhook
enforces them with the same model.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from keepvip.api.constants import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from keepvip.api.durations import DURATION_PATTERN, format_duration
from keepvip.api.field_docs import DescribedFields
from keepvip.api.model import VirtualIPSpec, VirtualIPStatus

JsonSchema = dict[str, Any]
_ISO_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)

_KEEP = {
    "type", "properties", "items", "required", "description", "default", "enum", "pattern",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "format",
    "additionalProperties", "nullable", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}  # fmt: skip


def _structural(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, definitions)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union of {len(branches)} types structurally: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**branches[0], **rest}, definitions)
    out: JsonSchema = {}
    for key, value in node.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _structural(child, definitions) for name, child in value.items()}
        elif key == "items":
            out["items"] = _structural(value, definitions)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _structural(value, definitions)
        elif key in _KEEP:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string" if all(isinstance(v, str) for v in out["enum"]) else "integer"
    _normalise_default(out)
    return out


def _normalise_default(out: JsonSchema) -> None:
    """Rewrite pydantic's defaults into what the API server should apply."""
    if "default" in out and out["default"] is None:
        del out["default"]  # optional: absent, not null
    if out.get("type") == "object" and "default" in out:
        out["default"] = {}  # nested defaults apply once the object exists
    if out.get("type") == "array" and out.get("default") in ([], ()):
        del out["default"]
    if out.get("pattern") == DURATION_PATTERN and "default" in out:
        # pydantic writes timedelta defaults in ISO 8601; the API speaks Go durations.
        out["default"] = format_duration(_ISO_DURATION.validate_python(out["default"]))


def model_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural schema of one API class."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=DescribedFields)
    return _structural(raw, raw.get("$defs", {}))


def custom_resource_definition(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    columns: list[dict[str, Any]],
    description: str,
    spec: type[BaseModel],
    status: type[BaseModel],
) -> dict[str, Any]:
    """A cluster-scoped keepvip CRD (apiextensions.k8s.io/v1) with a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/name": "keepvip"}},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": model_schema(spec),
                                "status": model_schema(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object for VirtualIP (apiextensions.k8s.io/v1)."""
    return custom_resource_definition(
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        columns=[
            {"name": "Address", "type": "string", "jsonPath": ".spec.addresses[0]"},
            {"name": "Master", "type": "string", "jsonPath": ".status.master"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "VRID", "type": "integer", "jsonPath": ".status.vrid"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        description="A virtual IP address kept alive by VRRP on the selected nodes.",
        spec=VirtualIPSpec,
        status=VirtualIPStatus,
    )


def render_crd() -> str:
    """The CRD as the YAML committed in ``crds/virtualips.keepvip.io.yaml``."""
    header = "# Generated by `keepvip crd` from keepvip/api/model.py; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)
