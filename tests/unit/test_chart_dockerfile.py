"""The Dockerfile's structure, checked by reading it (no container engine here).

The image is not built in this environment: these tests parse the Dockerfile and hold
it to what the chart relies on: a multi-stage build on python:3.11-slim that installs
the project from wheels built in the builder stage, the `keepvip` entry point the
chart's commands start with, a non-root default user for the operator, and a build
context that contains every file the COPY lines name.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass

from tests.chart_helm import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PARTS = ("api", "operator", "speaker")  # a distribution each, beside keepvip (src/)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def of(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def instructions() -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [Instruction(*[*text.split(None, 1), ""][:2]) for text in logical]


def stages() -> list[Stage]:
    args = {}
    found: list[Stage] = []
    current: list[Instruction] = []
    for instruction in instructions():
        keyword = instruction.keyword.upper()
        if keyword == "ARG" and not found and "=" in instruction.arguments:
            key, value = instruction.arguments.split("=", 1)
            args[key] = value
        if keyword == "FROM":
            if found:
                found[-1] = Stage(found[-1].base, found[-1].name, tuple(current))
            parts = instruction.arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            found.append(Stage(base, name, ()))
            current = []
        elif found:
            current.append(Instruction(keyword, instruction.arguments))
    found[-1] = Stage(found[-1].base, found[-1].name, tuple(current))
    return found


def test_it_is_a_multi_stage_build_on_python_3_11_slim_pinned_by_digest() -> None:
    built = stages()
    assert len(built) >= 2
    assert len({stage.base for stage in built}) == 1
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", s.base) for s in built)
    assert built[0].name == "builder"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_the_builder_stage_turns_the_project_into_wheels() -> None:
    builder = stages()[0]
    pattern = r"\bpip wheel --no-deps\b.*--wheel-dir /wheels\b.*\s\.$"
    assert any(re.search(pattern, run) for run in builder.of("RUN"))


def test_the_builder_downloads_the_dependencies_only_from_the_lock_file_with_hashes() -> None:
    builder = stages()[0]
    downloads = [run for run in builder.of("RUN") if "pip download" in run]
    assert len(downloads) == 1
    assert "--require-hashes" in downloads[0]
    assert "-r requirements.lock" in downloads[0]
    assert "requirements.lock ./" in builder.of("COPY")


def _locked() -> dict[str, list[str]]:
    """requirements.lock: name -> its hashes (every entry pinned with ==)."""
    entries: dict[str, list[str]] = {}
    text = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        assert sep, f"{requirement} is not pinned with =="
        assert version, f"{requirement} has no version"
        entries[name] = [o.removeprefix("--hash=sha256:") for o in options]
    return entries


def test_the_lock_file_pins_every_runtime_dependency_with_sha256_hashes() -> None:
    locked = _locked()
    for name, hashes in locked.items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    direct = {re.split(r"[<>=!~ ]", text, maxsplit=1)[0].lower().replace("_", "-")
              for text in PYPROJECT["project"]["dependencies"]}  # fmt: skip
    parts = {f"keepvip-{part}" for part in PARTS}  # built from this tree, not downloaded
    assert direct - parts <= set(locked), f"not locked: {direct - parts - set(locked)}"
    assert not parts & set(locked)


def test_the_runtime_stage_installs_only_the_builders_wheels_offline() -> None:
    runtime = stages()[-1]
    installs = [run for run in runtime.of("RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "from=builder" in installs[0]
    assert installs[0].count("pip install --no-index") == 2
    assert "--require-hashes -r /wheels/requirements.lock" in installs[0]
    assert not runtime.of("COPY"), "nothing from the working tree reaches the runtime image"


def test_the_builder_copies_every_folder_the_package_maps_and_the_files_pip_needs() -> None:
    sources = {src.rstrip("/") for c in stages()[0].of("COPY") for src in c.split()[:-1]}
    package_dirs = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    assert package_dirs <= sources, f"missing: {package_dirs - sources}"
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= sources
    assert set(PARTS) <= sources, "every part (one distribution per source root) is copied"


def test_the_builder_makes_a_wheel_of_every_part_and_none_of_the_development_tools() -> None:
    builder = stages()[0]
    sources = {src.rstrip("/") for c in builder.of("COPY") for src in c.split()[:-1]}
    wheels = next(run for run in builder.of("RUN") if "pip wheel" in run).split()
    assert {f"./{part}" for part in PARTS} <= set(wheels)
    assert "localcluster" not in sources
    assert not any("localcluster" in word for word in wheels)
    assert "localcluster" in DOCKERIGNORE.read_text().split(), "the tools stay out of the build context"


def test_every_copied_path_exists_and_is_not_excluded_by_dockerignore() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    for copy in stages()[0].of("COPY"):
        for source in copy.split()[:-1]:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), f"COPY {source}: not in the repository"
            assert not any(fnmatch.fnmatch(path, p) for p in patterns), f"{path} is .dockerignored"


def test_the_build_context_leaves_out_the_virtualenv_git_and_tests() -> None:
    patterns = set(DOCKERIGNORE.read_text().split())
    assert {".git", ".venv", "tests"} <= patterns


def test_the_default_user_is_non_root_and_created_in_the_image() -> None:
    runtime = stages()[-1]
    users = runtime.of("USER")
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    assert int(uid) != 0
    assert any(f"--uid {uid}" in run for run in runtime.of("RUN"))


def test_the_operator_pod_runs_as_the_images_user() -> None:
    values = (ROOT / "charts" / "keepvip" / "templates" / "operator-deployment.yaml").read_text()
    uid = stages()[-1].of("USER")[-1].split(":")[0]
    assert f"runAsUser: {uid}" in values


def test_the_entrypoint_is_the_keepvip_command_in_exec_form() -> None:
    entrypoints = stages()[-1].of("ENTRYPOINT")
    assert [json.loads(e) for e in entrypoints] == [["keepvip"]]
    assert "keepvip" in PYPROJECT["project"]["scripts"]
