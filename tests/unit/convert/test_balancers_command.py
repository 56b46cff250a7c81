"""``keepvip convert metallb|kube-vip|cilium`` on the command line, bad input, and ``--adopt``'s rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from keepvip.cli import main
from keepvip.convert.balancers import convert

DATA = Path(__file__).parents[2] / "data"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_output_folder_gets_the_pools_the_patches_the_script_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = DATA / "metallb" / "services-adopt"
    status = main(["convert", "metallb", "--adopt", "-o", str(tmp_path), str(case / "input")])
    assert status == 0
    assert (tmp_path / "keepvip.yaml").read_text() == (case / "expected.yaml").read_text()
    assert (tmp_path / "services.yaml").read_text() == (case / "expected-services.yaml").read_text()
    assert (tmp_path / "annotate.sh").read_text() == (case / "expected-annotate.sh").read_text()
    assert (tmp_path / "report.txt").read_text() == (case / "expected-report.txt").read_text()
    assert "summary:" in capsys.readouterr().err


def test_without_output_folder_every_document_goes_to_stdout_and_the_report_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["convert", "cilium", "--adopt", str(DATA / "cilium" / "services-adopt" / "input")])
    out, err = capsys.readouterr()
    assert status == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == ["VirtualIPPool"] * 3 + ["Service"] * 4
    assert "[converted] status.loadBalancer.ingress: 198.18.0.103 pinned" in err


def test_the_annotate_script_quotes_what_it_writes() -> None:
    script = convert("metallb", [DATA / "metallb" / "services-adopt" / "input"], adopt=True).script
    assert script.startswith("#!/bin/sh\n")
    assert (
        "kubectl annotate --overwrite --namespace dns service/dns-tcp "
        "keepvip.io/sharing-key=dns keepvip.io/load-balancer-ips=198.18.0.110"
    ) in script


def test_a_bad_pool_is_named_by_place_and_field_and_the_good_one_still_converts(tmp_path: Path) -> None:
    write(tmp_path, "pools.yaml", """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: good, namespace: metallb-system}
        spec:
          addresses: [198.18.0.10-198.18.0.20]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: bad, namespace: metallb-system}
        spec:
          addresses:
          - 198.18.0.0/24
          - 198.18.1.x
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: all, namespace: metallb-system}
    """)  # fmt: skip
    conversion = convert("metallb", [tmp_path / "pools.yaml"])
    report = conversion.report.render()
    assert conversion.report.failed
    assert "IPAddressPool/metallb-system/bad pools.yaml:13:5 [error] spec.addresses[1]:" in report
    assert "'198.18.1.x' is neither a CIDR nor an address nor a first-last range" in report
    assert [d["metadata"]["name"] for d in conversion.documents] == ["good"]


def test_an_error_inside_the_legacy_configmap_is_placed_on_the_files_own_line(tmp_path: Path) -> None:
    write(tmp_path, "config.yaml", """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: config, namespace: metallb-system}
        data:
          config: |
            address-pools:
            - name: default
              protocol: layer2
              addresses:
              - 198.18.0.300-198.18.0.310
    """)  # fmt: skip
    report = convert("metallb", [tmp_path / "config.yaml"]).report.render()
    assert "config.yaml:10:9 [error] data.config:address-pools[0].addresses[0]:" in report


def test_malformed_yaml_and_a_missing_file_are_errors_naming_the_place(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", """
        apiVersion: cilium.io/v2alpha1
        kind: CiliumLoadBalancerIPPool
        metadata: {name: [x}
    """)  # fmt: skip
    report = convert("cilium", [tmp_path / "broken.yaml", tmp_path / "absent.yaml"]).report.render()
    assert "broken.yaml:3:20 [error] yaml: not YAML:" in report
    assert "absent.yaml:0:0 [error] yaml: no such file or folder" in report


def test_kube_vip_rejects_an_address_that_is_not_one_naming_the_env_entry(tmp_path: Path) -> None:
    report = convert("kube-vip", [DATA / "kubevip" / "invalid" / "input"]).report.render()
    assert (
        "Pod/kube-system/kube-vip input/kube-vip.yaml:12:7 [error] spec.containers[0].env[1]: "
        "'api.example.com' is not an IP address"
    ) in report


def _adopt(tmp_path: Path, services: str) -> tuple[list[dict[str, object]], list[dict[str, object]], str]:
    write(tmp_path, "pools.yaml", """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: lan, namespace: metallb-system}
        spec:
          addresses: [198.18.0.100-198.18.0.109]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: lan, namespace: metallb-system}
    """)  # fmt: skip
    write(tmp_path, "services.yaml", services)
    conversion = convert("metallb", [tmp_path], adopt=True)
    return conversion.documents, conversion.patches, conversion.report.render()


def test_adopt_pins_what_a_service_holds_even_against_its_old_request(tmp_path: Path) -> None:
    _, patches, report = _adopt(tmp_path, """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: a
          annotations: {metallb.universe.tf/loadBalancerIPs: 198.18.0.105}
        spec: {type: LoadBalancer}
        status: {loadBalancer: {ingress: [{ip: 198.18.0.101}]}}
    """)  # fmt: skip
    assert patches[0]["metadata"] == {
        "name": "web", "namespace": "a", "annotations": {"keepvip.io/load-balancer-ips": "198.18.0.101"}
    }  # fmt: skip
    assert "asked for 198.18.0.105 but holds 198.18.0.101: pinned to what it holds" in report


def test_adopt_puts_only_addresses_outside_every_pool_in_the_adopted_pool(tmp_path: Path) -> None:
    documents, _, _ = _adopt(tmp_path, """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: {name: inside, namespace: a}
          spec: {type: LoadBalancer}
          status: {loadBalancer: {ingress: [{ip: 198.18.0.102}]}}
        - apiVersion: v1
          kind: Service
          metadata: {name: outside, namespace: a, annotations: {metallb.universe.tf/address-pool: lan}}
          spec: {type: LoadBalancer}
          status: {loadBalancer: {ingress: [{ip: 198.18.0.200}]}}
    """)  # fmt: skip
    adopted = [d for d in documents if d["metadata"] == {"name": "adopted-metallb"}]
    assert len(adopted) == 1
    assert adopted[0]["spec"] == {
        "addresses": ["198.18.0.200"], "reserveNetworkAndBroadcast": False, "autoAssign": False
    }  # fmt: skip


def test_adopt_drops_a_pool_annotation_whose_pool_does_not_hold_the_address(tmp_path: Path) -> None:
    _, patches, report = _adopt(tmp_path, """
        apiVersion: v1
        kind: Service
        metadata: {name: outside, namespace: a, annotations: {metallb.universe.tf/address-pool: lan}}
        spec: {type: LoadBalancer}
        status: {loadBalancer: {ingress: [{ip: 198.18.0.200}]}}
    """)  # fmt: skip
    annotations = patches[0]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations == {"keepvip.io/load-balancer-ips": "198.18.0.200"}
    assert "198.18.0.200 is not an address of pool lan: keepvip.io/pool is not written" in report


def test_without_adopt_a_held_address_is_reported_not_pinned(tmp_path: Path) -> None:
    write(tmp_path, "services.yaml", """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: a}
        spec: {type: LoadBalancer}
        status: {loadBalancer: {ingress: [{ip: 198.18.0.101}]}}
    """)  # fmt: skip
    conversion = convert("metallb", [DATA / "metallb" / "l2-pools" / "input", tmp_path / "services.yaml"])
    assert conversion.patches == []
    assert "convert with --adopt to pin it" in conversion.report.render()


def test_empty_documents_and_null_documents_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "pools.yaml", """
        ---
        ---
        ~
        ---
        apiVersion: cilium.io/v2alpha1
        kind: CiliumLoadBalancerIPPool
        metadata: {name: lan}
        spec: {blocks: [{cidr: 198.18.0.0/28}]}
        ---
        apiVersion: cilium.io/v2alpha1
        kind: CiliumL2AnnouncementPolicy
        metadata: {name: lan}
        spec: {loadBalancerIPs: true}
        ---
    """)  # fmt: skip
    conversion = convert("cilium", [tmp_path])
    assert not conversion.report.failed, conversion.report.render()
    assert [d["metadata"]["name"] for d in conversion.documents] == ["lan"]
