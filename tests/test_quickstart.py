"""The README's quickstart, run for real: what `make run` runs, then every curl block, the CLI, the SDK.

A newcomer meets the printed addresses and the README's before anything else: every one of them is
requested as printed, so an address that answers 404 fails here first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI = [sys.executable, "-m", "promptkeeper.cli"]


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


def make_run_command(port: int) -> list[str]:
    """What `make run PORT=<port>` runs, as the README says to pick a port (`make -n` runs nothing;
    `-o` keeps it from planning an install), with the venv's `promptkeeper` as this Python's."""
    assert re.search(r"`make run PORT=\d+`", README.read_text()), "the README says how to pick a port"
    planned = subprocess.run(
        ["make", "-s", "-n", "-o", ".venv/.installed", "run", f"PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    argv = shlex.split(planned.stdout.strip().splitlines()[-1])
    assert argv[0] == ".venv/bin/promptkeeper", argv
    return [*CLI, *argv[1:]]


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No PROMPTKEEPER_ variable and no saved login of whoever runs the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTKEEPER_")}
    env["PROMPTKEEPER_CONFIG"] = str(tmp_path / "no-saved-login.json")
    return env


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def printed(self) -> str:
        return "".join(self.lines)

    def wait_printed(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of `pattern` in what the server printed, waiting for it to be printed."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.printed())):
            assert time.monotonic() < deadline, f"never printed {pattern!r}:\n{self.printed()}"
            time.sleep(0.05)
        return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    if shutil.which("make") is None:
        pytest.skip("the README starts the server with make")
    port = _free_port()
    process = subprocess.Popen(
        make_run_command(port),
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Served(url=f"http://127.0.0.1:{port}", port=port, process=process)
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: server.lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60  # a loaded machine starts it slowly
    while True:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            reader.join(timeout=5)
            raise AssertionError("server did not start:\n" + server.printed())
        time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(timeout=15)
    reader.join(timeout=5)
    stdout.close()


def _answers(url: str) -> int:
    """The status of `url` as a browser or curl -L meets it: redirects followed."""
    return httpx.get(url, follow_redirects=True, timeout=10).status_code


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README uses curl")
def test_readme_quickstart_runs(served: Served, tmp_path: Path) -> None:
    url, process = served.url, served.process
    key = (tmp_path / ".promptkeeper" / "admin-key").read_text().strip()
    assert key.startswith("pk_")
    headers = {"Authorization": f"Bearer {key}"}
    samples = httpx.get(f"{url}/v1/prompts", headers=headers).json()
    assert samples["total"] >= 2  # --sample-data seeded the project
    found = served.wait_printed(r"sign in as (\S+) with password (\S+)")
    served.wait_printed(re.escape(key))
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
    shell_env = clean_env(tmp_path)
    state = ""  # variable assignments carry over between commands, as in a terminal
    outputs: list[str] = []
    for command in commands:
        command = command.replace("http://127.0.0.1:8700", url)
        command = command.replace(".venv/bin/promptkeeper", shlex.join(CLI))
        if re.match(r"^[A-Z]+=", command):
            state += command + "\n"
            continue
        result = subprocess.run(
            ["bash", "-c", state + command],
            cwd=tmp_path,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)
        if not command.startswith("curl "):
            continue
        body = json.loads(result.stdout)
        assert "error" not in body, (command, body)
        outputs.append(result.stdout)
    resolved = json.loads(outputs[2])
    assert resolved["version"] == 1 and resolved["variables"] == ["name", "product"]
    rendered = json.loads(outputs[3])
    assert rendered["text"] == "Hello Ada, welcome to PromptKeeper!"
    history = json.loads(outputs[-1])
    assert [d["action"] for d in history["items"]] == ["rollback", "deploy", "deploy"]
    assert ".venv/bin/python" in _quickstart()  # the README says which Python runs the SDK snippet
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
    process.wait(timeout=15)
    assert key in served.printed()  # the key was printed for the operator


def test_every_address_printed_or_in_the_readme_answers(served: Served) -> None:
    served.wait_printed(r"Web UI: http")
    served.wait_printed(r"export PROMPTKEEPER_URL=http")
    printed = {u.rstrip(".,;:") for u in re.findall(r"https?://[^\s'\"<>)]+", served.printed())}
    assert f"{served.url}/ui" in printed, served.printed()
    readme = {
        u.rstrip(".,;:").replace(":8700", f":{served.port}").replace("localhost", "127.0.0.1")
        for u in re.findall(r"http://(?:127\.0\.0\.1|localhost):8700[^\s'\"<>)`]*", README.read_text())
    }
    assert f"{served.url}/ui" in readme
    for address in sorted(printed | readme):
        assert 200 <= _answers(address) < 300, address
    assert 200 <= _answers(f"{served.url}/ui/") < 300  # typed with a slash, as people do


def test_the_cli_finds_the_server_make_run_started(served: Served, tmp_path: Path) -> None:
    """After `make run`, `promptkeeper prompts list` in that folder needs no key and no URL."""
    state = tmp_path / ".promptkeeper" / "server.json"
    served.wait_printed(r"export PROMPTKEEPER_API_KEY=\S+")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    listed = subprocess.run(
        [*CLI, "prompts", "list"], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "support/reply" in listed.stdout and "summarize" in listed.stdout
    # Anywhere else, the two printed export lines do the same.
    exports = "\n".join(re.findall(r"^\s*(export PROMPTKEEPER_\w+=.+)$", served.printed(), flags=re.M))
    assert exports.count("export ") == 2, served.printed()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exported = subprocess.run(
        ["bash", "-c", f"{exports}\n{shlex.join([*CLI, 'prompts', 'list'])}"],
        cwd=elsewhere,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0 and exported.stdout == listed.stdout, exported.stderr
    # Flags and environment variables come first: an explicit URL is never replaced by the file's.
    explicit = subprocess.run(
        [*CLI, "prompts", "list", "--url", "http://127.0.0.1:9"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert explicit.returncode != 0 and "127.0.0.1:9" in explicit.stderr, explicit.stderr
    served.process.terminate()
    served.process.wait(timeout=15)
    assert not state.exists()  # a stopped server leaves no address behind
