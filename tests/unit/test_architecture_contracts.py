"""The import contracts in .importlinter name modules one by one; these tests keep the
lists complete, so a module added later cannot slip past a contract unnoticed."""

from __future__ import annotations

import configparser
from pathlib import Path

import keepvip.speaker

ROOT = Path(__file__).resolve().parents[2]


def contract(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser[f"importlinter:contract:{name}"]


def listed(section: configparser.SectionProxy, key: str) -> set[str]:
    return {line.strip() for line in section[key].splitlines() if line.strip()}


def test_the_vrrp_core_contract_forbids_every_other_part_of_the_speaker() -> None:
    speaker = Path(keepvip.speaker.__file__).parent
    parts = {
        f"keepvip.speaker.{path.stem}"
        for path in speaker.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    forbidden = listed(contract("vrrp-core-stands-alone"), "forbidden_modules")
    assert parts - {"keepvip.speaker.vrrp"} <= forbidden
    assert {"keepvip.api", "keepvip.operator"} <= forbidden


def test_the_operator_purity_contract_covers_the_modules_the_design_calls_pure() -> None:
    pure = listed(contract("operator-pure-modules"), "source_modules")
    named = {"allocation", "status", "settle", "daemonset", "serviceref", "admission"}
    assert {f"keepvip.operator.{name}" for name in named} <= pure
    assert {"kopf", "kubernetes", "keepvip.operator.kube"} <= listed(
        contract("operator-pure-modules"), "forbidden_modules"
    )
