"""docs/workflow.md, run for real: every sh block in order, as one script, against a served instance."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_quickstart import Served, served  # noqa: F401 - the fixture

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "workflow.md"


def guide_script() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return "\n".join(block.replace("\\\n", " ") for block in blocks)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide uses curl")
def test_workflow_guide_runs(served: Served, tmp_path: Path) -> None:  # noqa: F811
    url = served.url
    script = guide_script()
    assert script.count("curl ") >= 10 and "promptkeeper users add" in script
    prelude = "\n".join(
        [
            "set -euo pipefail",
            # an HTTP error fails the script (and shows the body) instead of flowing on
            'curl() { command curl --fail-with-body "$@"; echo; }',
            f'promptkeeper() {{ "{sys.executable}" -m promptkeeper.cli "$@"; }}',
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTKEEPER_")}
    result = subprocess.run(
        ["bash", "-c", prelude + "\n" + script.replace("http://127.0.0.1:8700", url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    key = (tmp_path / ".promptkeeper" / "admin-key").read_text().strip()
    admin = {"Authorization": f"Bearer {key}"}
    history = httpx.get(f"{url}/v1/prompts/onboarding%2Fwelcome/deployments", headers=admin).json()
    assert [(d["environment"], d["version"], d["action"], d["actor"]) for d in history["items"]] == [
        ("production", 2, "promote", "bob@example.com"),
        ("staging", 2, "deploy", "eve@example.com"),
    ]
    version = httpx.get(f"{url}/v1/prompts/onboarding%2Fwelcome/versions/2", headers=admin).json()
    assert version["author"] == "eve@example.com" and "warmly" in version["content"]["messages"][0]["content"]
    reviews = httpx.get(f"{url}/v1/reviews", params={"status": "deployed"}, headers=admin).json()["items"]
    assert reviews[0]["approvals"] == ["ada@example.com", "bob@example.com"]
    audit = httpx.get(f"{url}/v1/audit", params={"prompt": "onboarding/welcome", "limit": 100}, headers=admin)
    actions = [entry["action"] for entry in audit.json()["items"]]
    for action in (
        "prompt.created",
        "draft.created",
        "draft.updated",
        "draft.merged",
        "version.created",
        "deployment.created",
        "review.created",
        "review.approved",
        "review.deployed",
    ):
        assert action in actions, (action, actions)
    assert "pk_" in result.stdout  # `keys create` printed a key
