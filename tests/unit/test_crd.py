"""The CRD is generated from the model, is structural, and the committed copy is current."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.api.crd import build_crd, render_crd
from keepvip.api.names import check_http_path, check_ifname
from keepvip.cli import main

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "crds" / "virtualips.keepvip.io.yaml"


def schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        found += schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += schema_nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def version() -> dict[str, Any]:
    spec: dict[str, Any] = build_crd()["spec"]
    assert len(spec["versions"]) == 1
    result: dict[str, Any] = spec["versions"][0]
    return result


def test_committed_crd_is_what_keepvip_crd_prints() -> None:
    assert COMMITTED.read_text() == render_crd(), "crds/ is stale: run `make crd`"


def test_keepvip_crd_command_prints_the_crd(capsys: Any) -> None:
    assert main(["crd"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == build_crd()


def test_the_schema_is_structural_every_node_has_a_type_and_no_refs() -> None:
    schema = version()["schema"]["openAPIV3Schema"]
    for path, node in schema_nodes(schema):
        assert "type" in node, f"{path or '<root>'} has no type"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "title"} & node.keys(), path
        assert node.get("additionalProperties") is not False, path


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    spec = version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing = [
        path
        for path, node in schema_nodes(spec, "spec")
        if path and "description" not in node and not path.endswith(("[]", "{}"))
    ]
    assert missing == []


def test_cluster_scoped_with_short_name_status_subresource_and_printer_columns() -> None:
    crd = build_crd()
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["vip"]
    assert version()["subresources"] == {"status": {}}
    columns = [c["name"].upper() for c in version()["additionalPrinterColumns"]]
    assert columns == ["ADDRESS", "MASTER", "STATE", "VRID", "AGE"]


def test_status_nodes_is_a_map_list_keyed_by_node() -> None:
    nodes = version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["nodes"]
    assert nodes["x-kubernetes-list-type"] == "map"
    assert nodes["x-kubernetes-list-map-keys"] == ["node"]
    assert "node" in nodes["items"]["required"]


def test_defaults_are_in_the_api_form() -> None:
    spec = version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["priority"]["default"] == 100
    assert spec["preemptDelay"]["default"] == "0s"
    assert spec["vrrp"]["properties"]["advertisementInterval"]["default"] == "1s"
    assert spec["vrrp"]["properties"]["checksum"]["default"] == "pseudoHeader"
    assert "default" not in spec["healthChecks"]["items"]["properties"]["tcp"]


def test_status_lists_may_be_null_because_server_side_apply_leaves_null_behind() -> None:
    status = version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["nodes"]["nullable"] is True
    assert status["conditions"]["nullable"] is True


def crd_node(path: str) -> dict[str, Any]:
    """The schema node at a dotted spec path ('spec.interface', 'spec.healthChecks[].http.path')."""
    nodes = dict(schema_nodes(version()["schema"]["openAPIV3Schema"]))
    return nodes["." + path]


def server_accepts(node: dict[str, Any], value: str) -> bool:
    """The API server's string checks (pattern, min/maxLength) as Python sees them.

    The patterns stay inside the syntax Go's RE2 and Python's re read alike.
    """
    return (
        node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value))
        and re.search(node["pattern"], value) is not None
    )


NAMES = ["eth0", "ens3", "bond0.100", "vlan-7_a", "é" * 7, "x" * 15, "x" * 16, "é" * 8, "", ".", "..",
         "eth0/1", "eth0:1", "eth 0", "eth\t0", "eth\x000", ":"]  # fmt: skip
PATHS = ["/", "/healthz", "/a?b=c&d=%20", "/~user/%C3%A9", "/ünï", "healthz", "", "/a b", "/a\r\nHost: x",
         "/\x00", "/\x7f", "/a\x85b", "/a\u2028b"]


@pytest.mark.parametrize("name", NAMES)
def test_the_crd_never_refuses_an_interface_name_the_model_admits(name: str) -> None:
    """Server validation and admission must agree: a name the model takes passes the CRD,
    and every refusal the CRD can express by characters or length it does express."""
    try:
        check_ifname(name)
        admitted = True
    except ValueError:
        admitted = False
    crd = server_accepts(crd_node("spec.interface"), name)
    beyond_openapi = name in (".", "..") or len(name) <= 15 < len(name.encode())  # RE2 has no lookahead
    assert crd is (admitted or beyond_openapi)


@pytest.mark.parametrize("path", PATHS)
def test_the_crd_and_the_model_agree_on_http_paths(path: str) -> None:
    try:
        check_http_path(path)
        admitted = True
    except ValueError:
        admitted = False
    assert server_accepts(crd_node("spec.healthChecks[].http.path"), path) is admitted
