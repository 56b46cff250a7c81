"""The development tools (keepvip-localcluster) are apart from the product.

``keepvip demo`` imports them lazily: without them it says how to install them. They
find the chart and examples/ in a source tree named explicitly or found and checked,
never by walking up from their own file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keepvip.localcluster import source
from tests.chart_helm import ROOT

WITHOUT_TOOLS = """
import sys
sys.path = [entry for entry in sys.path if "localcluster" not in entry]
from keepvip.cli import main
raise SystemExit(main(["demo"]))
"""


def test_keepvip_demo_without_the_tools_says_how_to_install_them(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", WITHOUT_TOOLS], cwd=tmp_path,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "development tools" in result.stderr
    assert "pip install -e ./localcluster" in result.stderr


def test_the_source_tree_is_the_one_named_and_it_is_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert source.source_tree(ROOT) == ROOT
    monkeypatch.setenv(source.ENVIRONMENT, str(ROOT))
    assert source.chart() == ROOT / "charts" / "keepvip"
    assert source.example("ingress-vip.yaml").is_file()
    monkeypatch.setenv(source.ENVIRONMENT, str(tmp_path))
    with pytest.raises(source.SourceTreeMissingError, match=source.ENVIRONMENT):
        source.chart()


def test_without_a_name_the_current_directory_then_the_tools_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(source.ENVIRONMENT, raising=False)
    (tmp_path / "charts" / "keepvip").mkdir(parents=True)
    (tmp_path / "charts" / "keepvip" / "Chart.yaml").write_text("name: keepvip\n")
    (tmp_path / "examples").mkdir()
    monkeypatch.chdir(tmp_path)
    assert source.source_tree() == tmp_path.resolve()
    monkeypatch.chdir(tmp_path / "examples")
    assert source.source_tree() == ROOT  # this checkout: the tools are installed from it


def test_keepvip_demo_refuses_a_source_that_holds_no_chart(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "keepvip", "demo", "--source", str(tmp_path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "holds no charts/keepvip/Chart.yaml" in result.stderr
