"""`make test` installs the CPU build of torch, and only that: never the CUDA wheel PyPI serves."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="the install is a make target")


def planned_torch_install() -> list[str]:
    """The pip command `make test` runs for torch (`make -n` prints the recipe and runs nothing)."""
    planned = subprocess.run(
        ["make", "-s", "-n", "-B", "-o", ".venv/.installed", ".venv/.installed-test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [line for line in planned.stdout.splitlines() if "torch" in line and "pip install" in line]
    command = line.split("||")[0]  # what follows explains a failure
    return shlex.split(command)


def test_the_torch_requirement_cannot_be_met_by_the_cuda_wheel() -> None:
    command = planned_torch_install()
    (spec,) = [arg for arg in command if arg.startswith("torch")]
    requirement = Requirement(spec)
    # On Linux x86_64, PyPI's torch 2.13.0 is the CUDA build; the CPU build is 2.13.0+cpu.
    assert Version("2.13.0") not in requirement.specifier, spec
    assert Version("2.13.0+cpu") in requirement.specifier, spec
    assert "--only-binary=:all:" in command  # no source build either
    assert CPU_INDEX in command


def test_the_planned_torch_install_resolves_to_the_cpu_wheel_here(tmp_path: Path) -> None:
    """Run the Makefile's own pip command, resolving only: on this machine the CPU index may be
    out of reach, and the CPU wheel comes from the local wheel directory instead."""
    command = planned_torch_install()
    at = command.index("install")
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps"]
    result = subprocess.run(
        [*pip, "--report", str(report), *command[at + 1 :]], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    (chosen,) = json.loads(report.read_text())["install"]
    assert chosen["metadata"]["name"] == "torch"
    assert chosen["metadata"]["version"] == "2.13.0+cpu", chosen["download_info"]["url"]


def test_without_the_local_wheels_it_is_the_cpu_build_or_an_error(tmp_path: Path) -> None:
    """An ordinary machine: no pip configuration, PyPI (whose torch 2.13.0 is the CUDA build) and
    PyTorch's CPU index. Where that index is reachable the CPU wheel is chosen; where it is not
    (this machine), pip refuses rather than taking PyPI's CUDA wheel."""
    command = planned_torch_install()
    at = command.index("install")
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps"]
    result = subprocess.run(
        [*pip, "--report", str(report), *command[at + 1 :]],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if result.returncode == 0:
        (chosen,) = json.loads(report.read_text())["install"]
        assert chosen["metadata"]["version"] == "2.13.0+cpu", chosen["download_info"]["url"]
    else:
        assert "No matching distribution found for torch==2.13.0+cpu" in result.stderr, result.stderr
