"""``keepvip convert keepalived`` on the command line: outputs and exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepvip.cli import main
from keepvip.speaker.sources.file import load_config_file

FIXTURES = Path(__file__).parents[2] / "data" / "keepalived"


def test_writes_the_documents_and_the_report_to_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = FIXTURES / "tutorial"
    status = main(["convert", "keepalived", "--node", f"node1={folder / 'node1.conf'}",
                   "--node", f"node2={folder / 'node2.conf'}", "-o", str(tmp_path / "out")])  # fmt: skip
    assert status == 0
    assert (tmp_path / "out" / "virtualips.yaml").read_text() == (folder / "expected.yaml").read_text()
    assert (tmp_path / "out" / "report.txt").read_text() == (folder / "expected-report.txt").read_text()
    assert [v.name for v in load_config_file(tmp_path / "out" / "virtualips.yaml").virtualips] == ["vi-1"]
    assert "summary:" in capsys.readouterr().err


def test_without_output_folder_documents_go_to_stdout_and_the_report_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = FIXTURES / "malformed"
    status = main(["convert", "keepalived", "--node", f"node1={folder / 'node1.conf'}",
                   "--node", f"node2={folder / 'node2.conf'}"])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 1  # malformed input: the report names each place
    assert out == (folder / "expected.yaml").read_text()
    assert 'node1.conf:8:12 [error] syntax: unterminated " quote' in err


@pytest.mark.parametrize("argument", ["node1", "=x.conf", "node1="])
def test_a_node_argument_without_name_and_file_is_a_usage_error(argument: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["convert", "keepalived", "--node", argument])
    assert exited.value.code == 2


def test_a_node_named_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = FIXTURES / "tutorial" / "node1.conf"
    assert main(["convert", "keepalived", "--node", f"a={conf}", "--node", f"a={conf}"]) == 2
    assert "twice" in capsys.readouterr().err
