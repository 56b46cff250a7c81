"""The repository layout (docs/architecture.md, "Layout"), held by tests.

One source root per part: ``keepvip`` is a PEP 420 namespace package whose portions are
``src/``, ``api/src/``, ``operator/src/``, ``speaker/src/`` (the product) and
``localcluster/src/`` (the development tools). What that layout promises, checked here:
no symlinks (the first wave mapped the folders into ``keepvip`` with them), nothing at the
repository root shadows the standard library (``operator/`` used to), every module file
has exactly one import name, the tools agree on the roots, and the product's wheels
contain none of the development tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import keepvip
from tests.chart_helm import ROOT

PRODUCT_ROOTS = ("src", "api/src", "operator/src", "speaker/src")
TOOL_ROOTS = ("localcluster/src",)
ROOTS = PRODUCT_ROOTS + TOOL_ROOTS


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_the_tree_holds_no_symlinks() -> None:
    links = [path.relative_to(ROOT) for path in _tracked() if path.is_symlink()]
    assert not links


@pytest.mark.parametrize("name", ["operator", "types", "string", "select", "test"])
def test_from_the_repository_root_the_standard_library_is_not_shadowed(name: str) -> None:
    # `python -c` puts the current directory first on sys.path: the old top-level
    # operator/__init__.py won over the standard library's `operator` there.
    found = subprocess.run(
        [sys.executable, "-c", f"import {name}; print({name}.__file__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.strip()  # fmt: skip
    stdlib = Path(os.__file__).resolve().parent
    assert Path(found).resolve().is_relative_to(stdlib), found


def test_no_folder_at_the_root_is_a_regular_package() -> None:
    packages = [path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()]
    assert set(packages) <= {"tests"}


def test_every_python_file_of_a_part_is_under_its_source_root() -> None:
    # A file merged in from a branch of the old layout (operator/x.py) would be neither
    # imported nor type-checked: it must be moved to operator/src/keepvip/operator/x.py.
    parts = {"api", "operator", "speaker", "localcluster"}
    stray = [
        path.relative_to(ROOT) for path in _tracked()
        if path.suffix == ".py" and path.relative_to(ROOT).parts[0] in parts | {"keepvip"}
        and not path.is_relative_to(ROOT / path.relative_to(ROOT).parts[0] / "src" / "keepvip")
    ]  # fmt: skip
    assert stray == []


def _import_names(path: Path) -> set[str]:
    """Every dotted name ``path`` is importable as, from the roots on sys.path.

    A name counts only if each folder between the root and the file is a package
    (regular, or a namespace portion named ``keepvip``), so ``api.src.keepvip...`` from
    the repository root, which nothing imports, is no name.
    """
    names = set()
    for listed in {*map(Path, sys.path), ROOT}:
        entry = listed.resolve() if listed.exists() else listed
        if not path.is_relative_to(entry):
            continue
        parts = path.relative_to(entry).with_suffix("").parts
        folders = [entry.joinpath(*parts[: i + 1]) for i in range(len(parts) - 1)]
        if all((folder / "__init__.py").exists() or folder.name == "keepvip" for folder in folders):
            names.add(".".join(p for p in parts if p != "__init__"))
    return names


def test_every_keepvip_module_has_exactly_one_import_name() -> None:
    modules = [
        path for root in ROOTS for path in (ROOT / root / "keepvip").rglob("*.py")
        if "build" not in path.relative_to(ROOT).parts
    ]  # fmt: skip
    assert len(modules) > 100
    names = {path: _import_names(path.resolve()) for path in modules}
    assert {path: found for path, found in names.items() if len(found) != 1} == {}
    assert all(next(iter(found)).startswith("keepvip.") for found in names.values())


def test_keepvip_is_a_namespace_package_over_the_source_roots() -> None:
    assert getattr(keepvip, "__file__", None) is None
    portions = {Path(part).resolve() for part in keepvip.__path__}
    assert portions == {(ROOT / root / "keepvip").resolve() for root in ROOTS}
    assert not [root for root in ROOTS if (ROOT / root / "keepvip" / "__init__.py").exists()]


def test_mypy_ruff_and_setuptools_agree_on_the_roots() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["mypy"]["mypy_path"].split(":") == list(ROOTS)
    assert config["tool"]["mypy"]["files"] == list(ROOTS)  # `mypy -p` would stop at src/
    assert set(ROOTS) <= set(config["tool"]["ruff"]["src"])
    for root in ROOTS:
        part = ROOT / root / ".." / "pyproject.toml"
        setuptools = tomllib.loads(part.resolve().read_text())["tool"]["setuptools"]
        assert setuptools["package-dir"] == {"": "src"}, f"{root}: an editable install is then a plain path"
    assert {"src", "api/src", "operator/src", "speaker/src"} == set(PRODUCT_ROOTS)


@pytest.mark.timeout(600)
def test_the_product_wheels_contain_no_development_tools(tmp_path: Path) -> None:
    # pip builds each project in place (setuptools' build/ folder): build a copy so the
    # checkout stays clean. Offline: the build backend comes from the local index.
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("build", "__pycache__", "*.egg-info")
    for root in ROOTS:
        shutil.copytree(ROOT / root, tree / root, ignore=skip)
        project = Path(root).parent
        for name in ("pyproject.toml", "README.md") if project == Path() else ("pyproject.toml",):
            shutil.copy(ROOT / project / name, tree / project / name)
    wheels_dir = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels_dir),
         *[str(tree / root / "..") for root in PRODUCT_ROOTS]],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    wheels = sorted(wheels_dir.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == [
        "keepvip", "keepvip_api", "keepvip_operator", "keepvip_speaker",
    ]  # fmt: skip
    names = [name for wheel in wheels for name in zipfile.ZipFile(wheel).namelist()]
    assert "keepvip/cli.py" in names
    assert "keepvip/speaker/vrrp/router.py" in names
    assert not [name for name in names if "localcluster" in name]
    assert not [name for name in names if name.startswith("keepvip/") and name.endswith("__init__.py")
                and name.count("/") == 1]  # fmt: skip
