"""What `GET /v1/experiments/{id}/results` reports, against SciPy and statsmodels on the same data.

The events go through `/v1/events`, the aggregation through the database; the reference numbers are
computed here from the per-unit values the test generated.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from tests.helpers import add_version, create_prompt, deploy

ENV = "staging"
TOLERANCE = 1e-6


def _experiment(client: TestClient, name: str, candidates: int, **overrides: Any) -> dict[str, Any]:
    create_prompt(client, name, "v1 {{ q }}")
    for number in range(2, candidates + 2):
        add_version(client, name, f"v{number} {{{{ q }}}}")
    deploy(client, name, ENV, 1)
    body = {
        "prompt": name,
        "environment": ENV,
        "name": "reference",
        "candidates": [{"version": n, "weight": 1} for n in range(2, candidates + 2)],
        **overrides,
    }
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    assert client.post(f"/v1/experiments/{created.json()['id']}/start", json={}).status_code == 200
    experiment: dict[str, Any] = created.json()
    return experiment


def _send(client: TestClient, experiment: dict[str, Any], outcomes: dict[str, list[dict[str, Any]]]) -> None:
    """One unit per outcome dict, one request each."""
    events: list[dict[str, Any]] = []
    for key, per_unit in outcomes.items():
        for i, outcome in enumerate(per_unit):
            request_id = f"{key}-{i}"
            events.append(
                {
                    "type": "exposure",
                    "request_id": request_id,
                    "experiment_id": experiment["id"],
                    "variant": key,
                    "unit": request_id,
                }
            )
            events.append({"type": "outcome", "request_id": request_id, **outcome})
    for start in range(0, len(events), 5_000):
        response = client.post("/v1/events", json={"events": events[start : start + 5_000]})
        assert response.status_code == 200, response.text


def _close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE * max(1.0, abs(theirs))


def test_binary_metric_matches_statsmodels_and_scipy_with_holm(client: TestClient) -> None:
    experiment = _experiment(
        client, "ref/binary", candidates=2, primary_metric="completion", baseline=0.3, mde=0.15
    )
    assert experiment["planned_sample_size"] == 500
    rng = random.Random(21)
    rates = {"control": 0.30, "v2": 0.36, "v3": 0.31}
    sizes = {"control": 620, "v2": 580, "v3": 600}
    flags = {key: [rng.random() < rates[key] for _ in range(sizes[key])] for key in rates}
    _send(client, experiment, {key: [{"completed": f} for f in values] for key, values in flags.items()})
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert results["state"] == "ready"
    assert "Holm correction over 2 candidates" in results["method"]

    counts = {key: sum(values) for key, values in flags.items()}
    raw_p = []
    for variant in results["variants"][1:]:
        key = variant["key"]
        ours = variant["metrics"]["completion"]
        z, p_value = proportions_ztest([counts[key], counts["control"]], [sizes[key], sizes["control"]])
        assert _close(ours["p_value"], float(p_value)), key
        assert _close(ours["mean"], counts[key] / sizes[key])
        assert _close(ours["lift"], counts[key] / sizes[key] - counts["control"] / sizes["control"])
        raw_p.append(float(p_value))
    _, adjusted, _, _ = multipletests(raw_p, method="holm")
    for variant, expected in zip(results["variants"][1:], adjusted, strict=True):
        assert _close(variant["metrics"]["completion"]["adjusted_p_value"], float(expected))
    table = [[counts[k] for k in rates], [sizes[k] - counts[k] for k in rates]]
    statistic, p_value, df, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert _close(results["chi_squared"]["statistic"], float(statistic))
    assert _close(results["chi_squared"]["p_value"], float(p_value))
    assert results["chi_squared"]["df"] == df
    interval = scipy_stats.binomtest(counts["control"], sizes["control"]).proportion_ci(method="wilson")
    ci = results["variants"][0]["metrics"]["completion"]["ci"]
    assert _close(ci["low"], float(interval.low)) and _close(ci["high"], float(interval.high))


def test_continuous_metric_matches_scipy_welch(client: TestClient) -> None:
    experiment = _experiment(
        client, "ref/rating", candidates=1, primary_metric="rating", std_dev=1.0, mde=0.5
    )
    rng = random.Random(8)
    ratings = {
        "control": [min(5.0, max(1.0, rng.gauss(3.4, 0.9))) for _ in range(540)],
        "v2": [min(5.0, max(1.0, rng.gauss(3.6, 1.2))) for _ in range(510)],
    }
    _send(client, experiment, {key: [{"rating": r} for r in values] for key, values in ratings.items()})
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert results["state"] == "ready" and results["method"].startswith("Welch")
    ours = results["variants"][1]["metrics"]["rating"]
    theirs = scipy_stats.ttest_ind(ratings["v2"], ratings["control"], equal_var=False)
    interval = theirs.confidence_interval(0.95)
    assert _close(ours["p_value"], float(theirs.pvalue))
    assert _close(ours["lift_ci"]["low"], float(interval.low))
    assert _close(ours["lift_ci"]["high"], float(interval.high))
    assert results["winner"] == ("v2" if theirs.pvalue < 0.05 and theirs.statistic > 0 else None)


@pytest.mark.parametrize(("rates", "winner"), [((0.30, 0.45), "v2"), ((0.30, 0.30), None)])
def test_sequential_mode_may_stop_early(
    client: TestClient, rates: tuple[float, float], winner: str | None
) -> None:
    experiment = _experiment(
        client,
        f"ref/seq-{rates[1]}",
        candidates=1,
        primary_metric="completion",
        baseline=0.3,
        mde=0.03,
        sequential=True,
    )
    assert experiment["planned_sample_size"] > 3_000
    rng = random.Random(4)
    flags = {
        key: [rng.random() < rate for _ in range(400)]
        for key, rate in zip(("control", "v2"), rates, strict=True)
    }
    _send(client, experiment, {key: [{"completed": f} for f in values] for key, values in flags.items()})
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    # 400 of 3,000+ planned units: a fixed-horizon experiment would still be collecting
    assert results["state"] == "ready" and results["sequential"] is True
    assert results["method"].startswith("mSPRT always-valid")
    assert results["winner"] == winner
    primary = results["variants"][1]["metrics"]["completion"]
    assert primary["significant"] is (winner is not None)
    fixed_width = 2 * 1.96 * (0.3 * 0.7 / 400 * 2) ** 0.5
    assert primary["lift_ci"]["high"] - primary["lift_ci"]["low"] > fixed_width  # wider: the price of peeking


def test_every_metric_received_is_reported_per_variant_with_intervals(client: TestClient) -> None:
    """Results show each metric the variants' outcomes carried, not only the primary and the named
    guardrails; only those two are tested (no p-values for the rest: testing every metric received
    would multiply the false discoveries)."""
    assert client.post(
        "/v1/metrics", json={"name": "resolved", "kind": "binary", "higher_is_better": True}
    ).status_code in (200, 201)
    assert client.post(
        "/v1/metrics", json={"name": "never_sent", "kind": "continuous", "higher_is_better": True}
    ).status_code in (200, 201)
    experiment = _experiment(
        client,
        "ref/all-metrics",
        candidates=1,
        primary_metric="completion",
        guardrails=["latency_ms"],
        sequential=True,
        baseline=0.3,
        mde=0.3,
    )
    rng = random.Random(5)
    sent: dict[str, dict[str, list[float]]] = {}

    def outcome(key: str) -> dict[str, Any]:
        slow = 1.2 if key == "v2" else 1.0
        values: dict[str, Any] = {
            "completed": rng.random() < 0.4,
            "thumbs": rng.choice(["up", "down"]),
            "rating": float(rng.randint(1, 5)),
            "latency_ms": rng.uniform(200, 400) * slow,
            "ttft_ms": rng.uniform(50, 90) * slow,
            "cost_usd": rng.uniform(0.001, 0.003),
            "safety_flag": rng.random() < 0.05,
            "metrics": {"resolved": rng.random() < 0.5},
        }
        for name in ("rating", "latency_ms", "ttft_ms", "cost_usd"):
            sent.setdefault(key, {}).setdefault(name, []).append(values[name])
        return values

    _send(client, experiment, {key: [outcome(key) for _ in range(150)] for key in ("control", "v2")})
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    expected = {
        "completion": "primary",
        "latency_ms": "guardrail",
        "thumbs_up": "secondary",
        "rating": "secondary",
        "ttft_ms": "secondary",
        "cost_usd": "secondary",
        "safety_flag": "secondary",
        "resolved": "secondary",
    }
    assert results["metric_roles"] == expected
    for variant in results["variants"]:
        metrics = variant["metrics"]
        assert set(metrics) == set(expected), variant["key"]
        for name in expected:
            assert metrics[name]["ci"] is not None, (variant["key"], name)
            assert metrics[name]["ci"]["low"] <= metrics[name]["mean"] <= metrics[name]["ci"]["high"]
        for name in ("rating", "latency_ms", "ttft_ms", "cost_usd"):
            values = sent[variant["key"]][name]
            assert _close(metrics[name]["mean"], sum(values) / len(values)), (variant["key"], name)
    candidate = results["variants"][1]["metrics"]
    for name, role in expected.items():
        assert candidate[name]["lift_ci"] is not None, name
        # the primary and the guardrails are tested; the other metrics are described, not tested
        assert (candidate[name]["p_value"] is None) == (role == "secondary"), name
    assert "never_sent" not in results["metric_roles"]
