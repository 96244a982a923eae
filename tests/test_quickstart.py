"""The README's quickstart, run for real: `promptkeeper serve --sample-data`, then every curl block."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quickstart() -> str:
    return README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]


def quickstart_python() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _quickstart(), flags=re.S)


def quickstart_commands() -> list[str]:
    """Shell commands of the Quickstart section's sh blocks (continuation lines joined)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", _quickstart(), flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("make "):
                commands.append(line)
    return commands


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTKEEPER_")}
    env["PROMPTKEEPER_PORT"] = str(port)
    process = subprocess.Popen(
        [sys.executable, "-m", "promptkeeper.cli", "serve", "--sample-data"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError(
                "server did not start:\n" + (process.stdout.read() if process.stdout else "")
            )
        time.sleep(0.1)
    yield url, process
    process.terminate()
    process.wait(timeout=15)
    if process.stdout is not None and not process.stdout.closed:
        process.stdout.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README uses curl")
def test_readme_quickstart_runs(served: tuple[str, subprocess.Popen[str]], tmp_path: Path) -> None:
    url, process = served
    key = (tmp_path / ".promptkeeper" / "admin-key").read_text().strip()
    assert key.startswith("pk_")
    headers = {"Authorization": f"Bearer {key}"}
    samples = httpx.get(f"{url}/v1/prompts", headers=headers).json()
    assert samples["total"] >= 2  # --sample-data seeded the project
    assert process.stdout is not None
    printed = ""
    while "Web UI:" not in printed or key not in printed:  # both printed before it answered /healthz
        printed += process.stdout.readline()
    found = re.search(r"sign in as (\S+) with password (\S+)", printed)
    assert found, printed
    with httpx.Client(base_url=url) as browser:
        signed = browser.post(
            "/ui/login", data={"email": found[1], "password": found[2], "next": "/ui/prompts"}
        )
        assert signed.status_code == 303 and "support/reply" in browser.get("/ui/prompts").text
    running = httpx.get(f"{url}/v1/experiments", params={"status": "running"}, headers=headers).json()
    assert [e["name"] for e in running["items"]] == ["friendlier tone"]  # ... and started an experiment
    # ... and queued an evaluation run, which the server's in-process worker executes.
    deadline = time.monotonic() + 30
    while True:
        runs = httpx.get(f"{url}/v1/prompts/summarize/evaluations", headers=headers).json()["items"]
        if runs and runs[0]["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.2)
    assert runs[0]["done"] == 6 and set(runs[0]["summary"]["scorers"]) == {"length", "contains"}
    commands = quickstart_commands()
    assert len(commands) >= 10
    shell_env = {**os.environ, "PATH": os.environ.get("PATH", "")}
    state = ""  # variable assignments carry over between commands, as in a terminal
    outputs: list[str] = []
    for command in commands:
        command = command.replace("http://127.0.0.1:8700", url)
        if re.match(r"^[A-Z]+=", command):
            state += command + "\n"
            continue
        result = subprocess.run(
            ["bash", "-c", state + command],
            cwd=tmp_path,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, (command, result.stderr)
        body = json.loads(result.stdout)
        assert "error" not in body, (command, body)
        outputs.append(result.stdout)
    resolved = json.loads(outputs[2])
    assert resolved["version"] == 1 and resolved["variables"] == ["name", "product"]
    rendered = json.loads(outputs[3])
    assert rendered["text"] == "Hello Ada, welcome to PromptKeeper!"
    history = json.loads(outputs[-1])
    assert [d["action"] for d in history["items"]] == ["rollback", "deploy", "deploy"]
    (python_block,) = quickstart_python()
    sdk = subprocess.run(
        [sys.executable, "-c", python_block.replace("http://127.0.0.1:8700", url)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout.strip() == "1 Hello Ada, welcome to PromptKeeper!"
    assert (tmp_path / ".promptkeeper" / "snapshot.json").exists()
    process.terminate()
    log = printed + process.communicate(timeout=15)[0]
    assert key in log  # the key was printed for the operator
