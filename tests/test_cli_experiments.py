"""`promptkeeper experiments ...` against a served instance: the whole lifecycle, errors as one line."""

from __future__ import annotations

import json

from tests.conftest import LiveServer
from tests.helpers import add_version, create_prompt, deploy, run_cli


def _cli(server: LiveServer, *args: str) -> tuple[int, str, str]:
    return run_cli(server.url, *args)


def test_experiment_lifecycle_from_the_cli(live_server: LiveServer) -> None:
    with live_server.client() as client:
        create_prompt(client, "cli/exp", "A {{ q }}")
        add_version(client, "cli/exp", "B {{ q }}")
        deploy(client, "cli/exp", "staging", 1)
    code, out, err = _cli(
        live_server,
        "experiments", "create", "cli/exp", "--env", "staging", "--candidate", "2:1", "--control-weight", "3",
        "--metric", "completion", "--baseline", "0.4", "--mde", "0.1", "--guardrail", "latency_ms", "--json",
    )  # fmt: skip
    assert code == 0, err
    experiment = json.loads(out)
    eid = str(experiment["id"])
    assert [v["weight"] for v in experiment["variants"]] == [0.75, 0.25]

    code, out, err = _cli(live_server, "experiments", "start", eid)
    assert code == 0 and out.startswith(f"started experiment {eid}") and "running" in out, err
    code, out, _ = _cli(live_server, "experiments", "weights", eid, "control=1", "v2=1")
    assert code == 0 and "control=v1 50%" in out and "v2=v2 50%" in out
    code, out, _ = _cli(live_server, "experiments", "list", "--status", "running")
    assert code == 0 and f"experiment {eid}" in out
    code, alias_out, _ = _cli(live_server, "experiment", "list", "--status", "running")  # the alias
    assert code == 0 and alias_out == out

    with live_server.client() as client:
        events = []
        for i in range(20):
            variant = "control" if i % 2 else "v2"
            events.append(
                {
                    "type": "exposure",
                    "request_id": f"c{i}",
                    "experiment_id": int(eid),
                    "variant": variant,
                    "unit": f"u{i}",
                }
            )
            events.append(
                {"type": "outcome", "request_id": f"c{i}", "completed": i % 3 == 0, "latency_ms": 100 + i}
            )
        assert client.post("/v1/events", json={"events": events}).status_code == 200
    code, out, err = _cli(live_server, "experiments", "results", eid)
    assert code == 0, err
    assert "collecting (10 of 500" in out and "latency_ms" in out and "SRM: p = 1" in out

    code, out, err = _cli(live_server, "experiments", "stop", eid, "--decision", "ship")
    assert code == 1 and err.startswith("error: 422: body.variant") and err.count("\n") == 1
    code, out, err = _cli(live_server, "experiments", "stop", eid, "--decision", "ship", "--variant", "v2")
    assert code == 0 and "decision ship" in out, err
    code, out, _ = _cli(live_server, "experiments", "show", eid, "--json")
    assert json.loads(out)["status"] == "stopped"

    code, _, err = _cli(live_server, "experiments", "show", "999")
    assert code == 1 and err == "error: 404: experiment 999 not found\n"
    code, _, err = _cli(
        live_server, "experiments", "create", "cli/exp", "-c", "x", "--metric", "completion", "--mde", "0.1"
    )
    assert code == 2 and "give a version number" in err
