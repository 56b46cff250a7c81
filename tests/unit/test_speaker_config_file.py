"""The standalone configuration file: VirtualIPs and Secrets, refused whole with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepvip.speaker.main import parse_host_port, parse_labels
from keepvip.speaker.sources.file import InvalidConfigFile, load_config_file, parse_config_text

VALID = """
apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: [198.18.0.100/24]
  vrrp:
    version: 2
    vrid: 51
    authentication: {type: PASS, secretRef: {namespace: default, name: vrrp, key: pw}}
---
apiVersion: v1
kind: Secret
metadata: {name: vrrp}
stringData: {pw: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: other, namespace: prod}
data: {pw: aGVsbG8=}
"""

VIP_HEAD = "apiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\n"


def test_a_stream_of_virtualips_and_secrets_is_read() -> None:
    snapshot = parse_config_text(VALID)
    assert [v.name for v in snapshot.virtualips] == ["web"]
    assert snapshot.secrets[("default", "vrrp", "pw")] == b"s3cret"
    assert snapshot.secrets[("prod", "other", "pw")] == b"hello"


def test_an_invalid_document_is_refused_naming_its_index_name_and_field() -> None:
    text = VALID + "---\napiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: bad}\n"
    text += "spec: {addresses: [198.18.0.7/24], priority: 300}\n"
    with pytest.raises(InvalidConfigFile, match=r"document 3: VirtualIP 'bad' is invalid: spec\.priority"):
        parse_config_text(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [unclosed", "not valid YAML"),
        ("- just a list", "expected a mapping"),
        ("kind: ConfigMap\nmetadata: {name: x}", "kind must be VirtualIP or Secret"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '***'}", r"data\.k is not base64"),
        (
            f"{VIP_HEAD}metadata: {{name: a}}\nspec: {{addresses: [198.18.0.1]}}\n---\n"
            f"{VIP_HEAD}metadata: {{name: a}}\nspec: {{addresses: [198.18.0.2]}}",
            "'a' is used twice",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidConfigFile, match=message):
        parse_config_text(text)


def test_a_missing_file_is_refused_not_crashed(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigFile, match="cannot read"):
        load_config_file(tmp_path / "absent.yaml")


def test_node_labels_and_metrics_address_parse() -> None:
    assert parse_labels("rack=r1, zone=a,empty=") == {"rack": "r1", "zone": "a", "empty": ""}
    assert parse_labels("") == {}
    with pytest.raises(ValueError, match="not key=value"):
        parse_labels("rack")
    assert parse_host_port("127.0.0.1:9472") == ("127.0.0.1", 9472)
    assert parse_host_port("[::1]:9472") == ("::1", 9472)
    assert parse_host_port(":9472") == ("0.0.0.0", 9472)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("9472")


def test_the_standalone_example_is_a_valid_configuration() -> None:
    example = Path(__file__).parents[2] / "examples" / "standalone.yaml"
    snapshot = load_config_file(example)
    assert [v.name for v in snapshot.virtualips] == ["web", "legacy"]
    assert snapshot.secrets[("default", "vrrp", "password")] == b"s3cret"
