"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Each test signs in as a user made through the API, works through pages the way a product manager
would, and saves screenshots to test-artifacts/ui/ (one per step, named after the test).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import LiveServer
from tests.helpers import ui_routes

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/ensure-services.sh)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Shots:
    def __init__(self, name: str) -> None:
        self.name = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        self.count = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, step: str) -> None:
        self.count += 1
        page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.count:02d}-{step}.png"), full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


def _user(http: httpx.Client, email: str, role: str) -> None:
    created = http.post("/v1/users", json={"email": email, "role": role, "password": PASSWORD, "name": email})
    assert created.status_code == 201, created.text


def _sign_in(browser: Browser, server: LiveServer, email: str) -> Page:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{server.url}/ui/prompts")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("Prompts"))).to_be_visible()
    return page


def test_create_edit_preview_diff_promote_and_roll_back(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    with live_server.client() as http:
        _user(http, "pm@example.com", "editor")
    page = _sign_in(browser, live_server, "pm@example.com")
    shots(page, "prompts")

    page.get_by_role("link", name="New prompt").click()
    page.get_by_label("Name").fill("support/reply")
    page.get_by_label("Role of message 1").select_option("system")
    page.get_by_label("Content of message 1").fill("You help customers of {{ product }}.")
    page.get_by_label("Content of message 2").fill("{{ question }}")
    page.get_by_role("button", name="Add message").click()
    page.get_by_label("Content of message 3").fill("temporary")
    page.get_by_role("button", name="Remove message").nth(2).click()
    expect(page.get_by_label("Content of message 3")).to_have_count(0)
    page.get_by_label("Sample variables for the preview").fill(
        '{"product": "Acme", "question": "Where is my parcel?"}'
    )
    expect(page.get_by_test_id("rendered")).to_contain_text("You help customers of Acme.")
    expect(page.get_by_test_id("rendered")).to_contain_text("Where is my parcel?")
    shots(page, "new-prompt-preview")
    page.get_by_role("button", name="Create prompt").click()
    expect(page.get_by_test_id("prompt-name")).to_have_text("support/reply")

    editor = page.get_by_label("Content of message 1")
    editor.fill("You help customers of {{ product }} {% if %}")
    expect(page.get_by_test_id("template-error")).to_contain_text("template error")
    shots(page, "inline-template-error")
    editor.fill("You kindly help customers of {{ product }}, in {{ language }}.")
    page.get_by_label("Sample variables for the preview").fill('{"product": "Acme", "language": "French"}')
    expect(page.get_by_test_id("rendered")).to_contain_text("You kindly help customers of Acme, in French.")
    expect(page.get_by_test_id("preview-body")).to_contain_text("{{ language }}")  # detected variables
    expect(page.get_by_test_id("highlighted").locator("mark").first).to_have_text("{{ product }}")
    page.get_by_label("Commit message").fill("kinder, and in the user's language")
    shots(page, "edit-v2")
    page.get_by_test_id("save-version").click()
    expect(page.get_by_test_id("history")).to_contain_text("kinder, and in the user's language")

    page.get_by_test_id("compare").click()
    expect(page.get_by_role("heading", name=re.compile("v1 → v2"))).to_be_visible()
    expect(page.locator("ins").first).to_contain_text("kindly")
    shots(page, "diff-split")
    page.get_by_label("View").select_option("inline")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tr.ins").first).to_be_visible()
    shots(page, "diff-inline")
    page.get_by_role("link", name="support/reply").click()

    for version in ("1", "2"):
        page.get_by_label("Version for production").select_option(version)
        page.get_by_test_id("promote-production").click()
        expect(page.get_by_test_id("allowed")).to_be_visible()
        shots(page, f"confirm-v{version}")
        page.get_by_test_id("confirm").click()
        expect(page.get_by_test_id("live-production")).to_have_text(f"v{version}")
    page.get_by_test_id("rollback-production").click()
    expect(page.get_by_role("heading", name=re.compile("Roll back"))).to_be_visible()
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("live-production")).to_have_text("v1")
    page.get_by_text("Deployment timeline").click()
    expect(page.get_by_test_id("timeline").locator("tbody tr")).to_have_count(3)
    expect(page.get_by_test_id("timeline").locator("tbody tr").first).to_contain_text("rollback")
    shots(page, "rolled-back")
    from datetime import UTC, datetime, timedelta

    after_rollback = datetime.now(UTC) + timedelta(seconds=1)  # the field has whole seconds
    page.get_by_label("What ran at").fill(after_rollback.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("ran-production")).to_have_text("v1")
    page.get_by_label("What ran at").fill("2020-01-01T00:00:00")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("ran-production")).to_have_text("nothing")
    page.get_by_role("link", name="Prompts", exact=True).click()
    page.get_by_label("Head status").select_option("testing")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="support/reply")).to_have_count(0)  # v2 is no longer live anywhere
    page.get_by_label("Head status").select_option("archived")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="support/reply")).to_have_count(1)

    with live_server.client() as http:
        history = http.get("/v1/prompts/support%2Freply/deployments").json()["items"]
        assert [(h["action"], h["version"]) for h in history] == [
            ("rollback", 1),
            ("deploy", 2),
            ("deploy", 1),
        ]
        assert history[0]["actor"] == "pm@example.com"


def test_viewers_see_no_edit_controls_and_posts_need_rights_and_csrf(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    with live_server.client() as http:
        _user(http, "viewer@example.com", "viewer")
        http.post("/v1/prompts", json={"name": "faq", "content": {"type": "text", "template": "Q: {{ q }}"}})
    page = _sign_in(browser, live_server, "viewer@example.com")
    expect(page.get_by_role("link", name="New prompt")).to_have_count(0)
    page.get_by_role("link", name="faq").click()
    expect(page.get_by_test_id("history")).to_be_visible()
    expect(page.get_by_test_id("save-version")).to_have_count(0)
    expect(page.get_by_test_id("promote-production")).to_have_count(0)
    shots(page, "viewer-prompt")

    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    posted = page.request.post(
        f"{live_server.url}/ui/prompts/faq/versions",
        form={"csrf": csrf, "type": "text", "template": "changed", "message": "sneaky"},
    )
    assert posted.status == 403 and "viewer" in posted.text()
    no_token = page.request.post(
        f"{live_server.url}/ui/prompts/faq/deploy", form={"environment": "production", "version": "1"}
    )
    assert no_token.status == 403 and "CSRF" in no_token.text()
    with live_server.client() as http:
        assert http.get("/v1/prompts/faq/versions").json()["total"] == 1  # nothing changed
        assert http.get("/v1/prompts/faq/deployments").json()["items"] == []


def test_session_cookie_and_security_headers(live_server: LiveServer) -> None:
    with live_server.client() as http:
        _user(http, "ed@example.com", "editor")
    with httpx.Client(base_url=live_server.url) as browserless:
        assert browserless.get("/ui/prompts").status_code == 303
        bad = browserless.post(
            "/ui/login", data={"email": "ed@example.com", "password": "nope", "next": "/ui/prompts"}
        )
        assert bad.status_code == 401 and "wrong email or password" in bad.text
        ok = browserless.post(
            "/ui/login", data={"email": "ed@example.com", "password": PASSWORD, "next": "//evil.example"}
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/prompts"  # no open redirect
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        listed = browserless.get("/ui/prompts")
        headers: dict[str, Any] = dict(listed.headers)
        assert listed.status_code == 200
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        api_key_cookie = httpx.get(
            f"{live_server.url}/ui/prompts", cookies={"pk_session": "pk_not_a_session"}
        )
        assert api_key_cookie.status_code == 303  # an API key is not a login session


def test_promotion_to_a_protected_environment_needs_a_second_users_approval(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    with live_server.client() as http:
        _user(http, "author@example.com", "editor")
        _user(http, "lead@example.com", "approver")
        assert http.patch("/v1/environments/production", json={"protected": True}).status_code == 200
        http.post(
            "/v1/prompts", json={"name": "refunds", "content": {"type": "text", "template": "v1 {{ q }}"}}
        )
        http.post(
            "/v1/prompts/refunds/versions", json={"content": {"type": "text", "template": "v2 {{ q }}"}}
        )
    author = _sign_in(browser, live_server, "author@example.com")
    author.goto(f"{live_server.url}/ui/prompts/refunds")
    author.get_by_label("Version for production").select_option("2")
    author.get_by_test_id("promote-production").click()
    expect(author.get_by_test_id("blocked")).to_contain_text("'production' is protected")
    shots(author, "blocked")
    author.get_by_test_id("request-review").click()
    expect(author.get_by_test_id("review-state")).to_contain_text("pending")
    expect(author.get_by_test_id("approve")).to_have_count(0)  # an author cannot approve their own review
    review_url = author.url
    shots(author, "review-requested")

    lead = _sign_in(browser, live_server, "lead@example.com")
    lead.goto(review_url)
    lead.get_by_label("Comment").fill("Looks right; the refund wording is clearer.")
    lead.get_by_test_id("approve").click()
    expect(lead.get_by_test_id("review-state")).to_contain_text("approved")
    expect(lead.get_by_test_id("events")).to_contain_text("lead@example.com approve")
    shots(lead, "approved")
    lead.get_by_test_id("deploy-reviewed").click()
    expect(lead.get_by_test_id("live-production")).to_have_text("v2")
    shots(lead, "deployed")

    with live_server.client() as http:
        review = http.get("/v1/reviews", params={"status": "deployed"}).json()["items"][0]
        assert review["version"] == 2 and review["environment"] == "production"
        history = http.get("/v1/prompts/refunds/deployments").json()["items"]
        assert (history[0]["version"], history[0]["actor"]) == (2, "lead@example.com")


def test_monitoring_page_shows_scores_alerts_and_the_automatic_rollback(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    from promptkeeper.monitoring.scoring import MonitorScorer

    database = live_server.app.state.context.db
    scorer = MonitorScorer(database, live_server.app_settings, "ui-test")
    with live_server.client() as http:
        _user(http, "oncall@example.com", "viewer")
        http.post(
            "/v1/prompts", json={"name": "answers", "content": {"type": "text", "template": "A {{ q }}"}}
        )
        http.post("/v1/prompts/answers/versions", json={"content": {"type": "text", "template": "B {{ q }}"}})
        http.post("/v1/prompts/answers/deployments", json={"environment": "production", "version": 1})
        rule = {
            "scorer": "not_contains",
            "name": "safety",
            "params": {"values": ["UNSAFE"]},
            "critical_margin": 0.1,
        }
        monitor = http.post(
            "/v1/monitors",
            json={
                "prompt": "answers",
                "sample_rate": 1.0,
                "scorers": [rule],
                "window_size": 100,
                "min_sample": 50,
                "check_every": 25,
                "consecutive": 2,
                "auto_rollback": True,
            },
        ).json()

        def send(version: int, start: int, unsafe_every: int) -> None:
            events = [
                {
                    "type": "generation",
                    "request_id": f"g{start + i}",
                    "prompt": "answers",
                    "version": version,
                    "environment": "production",
                    "output": "UNSAFE advice" if (start + i) % unsafe_every == 0 else "a careful answer",
                }
                for i in range(25)
            ]
            assert http.post("/v1/events", json={"events": events}).status_code == 200
            while scorer.step():
                pass

        for start in range(0, 150, 25):
            send(1, start, 1000)
        http.post("/v1/prompts/answers/deployments", json={"environment": "production", "version": 2})
        start = 150
        while http.get("/v1/resolve/answers", params={"environment": "production"}).json()["version"] == 2:
            assert start < 1000
            send(2, start, 2)
            start += 25

    page = _sign_in(browser, live_server, "oncall@example.com")
    page.get_by_role("link", name="Monitoring").click()
    expect(page.get_by_test_id("monitors")).to_contain_text("answers")
    page.get_by_role("link", name=f"#{monitor['id']}").click()
    expect(page.locator("svg.chart title")).to_have_text(
        "Score of the live version at each look (pass rate or mean)"
    )
    expect(page.locator("svg.chart path").first).to_be_visible()
    expect(page.get_by_test_id("alerts")).to_contain_text("critical")
    expect(page.get_by_test_id("rollback")).to_contain_text("rolled back to v1")
    shots(page, "monitor")
    page.get_by_role("link", name="failing outputs").first.click()
    expect(page.get_by_test_id("examples")).to_contain_text("UNSAFE advice")
    shots(page, "failing-outputs")


def test_experiment_created_started_watched_and_concluded(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    import random

    with live_server.client() as http:
        _user(http, "growth@example.com", "editor")
        http.post(
            "/v1/prompts",
            json={"name": "onboarding", "content": {"type": "text", "template": "Welcome {{ n }}"}},
        )
        http.post(
            "/v1/prompts/onboarding/versions", json={"content": {"type": "text", "template": "Hi {{ n }}!"}}
        )
        http.post("/v1/prompts/onboarding/deployments", json={"environment": "production", "version": 1})
    page = _sign_in(browser, live_server, "growth@example.com")
    page.get_by_role("link", name="Experiments").click()
    page.get_by_role("link", name="New experiment").click()
    page.get_by_label("Prompt").fill("onboarding")
    page.get_by_label("Name", exact=True).fill("friendlier greeting")
    page.get_by_label("Candidate versions").fill("2")
    page.get_by_label("Control's expected rate").fill("0.3")
    page.get_by_label("Minimum detectable effect").fill("0.05")
    page.get_by_test_id("calculate").click()
    expect(page.get_by_test_id("planned")).to_contain_text("units per variant")
    shots(page, "sample-size")
    page.get_by_test_id("create-experiment").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("draft")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("running")
    experiment_id = page.url.rsplit("/", 1)[1]

    with live_server.client() as http:
        experiment = http.get(f"/v1/experiments/{experiment_id}").json()
        rng = random.Random(3)
        events = []
        for i in range(400):
            key = "control" if i % 2 else experiment["variants"][1]["key"]
            rate = 0.3 if key == "control" else 0.45
            request_id = f"u{i}"
            events.append(
                {
                    "type": "exposure",
                    "request_id": request_id,
                    "experiment_id": experiment["id"],
                    "variant": key,
                    "unit": f"user{i}",
                }
            )
            outcome = {"completed": rng.random() < rate, "latency_ms": rng.uniform(200, 400)}
            events.append({"type": "outcome", "request_id": request_id, **outcome})
        assert http.post("/v1/events", json={"events": events}).status_code == 200

    page.reload()
    expect(page.get_by_test_id("results")).to_contain_text("control")
    # every metric the outcomes carried is shown, not only the primary one
    expect(page.get_by_test_id("all-metrics")).to_contain_text("latency_ms")
    expect(page.get_by_test_id("all-metrics")).to_contain_text("secondary")
    expect(page.get_by_test_id("results-state")).to_contain_text("collecting")
    expect(page.locator("[data-testid=metric-chart] svg path")).to_have_count(2)
    shots(page, "results")
    page.get_by_label("Decision").select_option("keep_control")
    page.get_by_label("Reason").fill("too early to tell; keeping the control")
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("experiment-status")).to_have_text("stopped")
    shots(page, "stopped")


def test_run_an_evaluation_and_see_its_chart(browser: Browser, live_server: LiveServer, shots: Shots) -> None:
    with live_server.client() as http:
        _user(http, "qa@example.com", "editor")
        http.post(
            "/v1/prompts", json={"name": "capitals", "content": {"type": "text", "template": "{{ country }}"}}
        )
        http.post(
            "/v1/prompts/capitals/versions",
            json={"content": {"type": "text", "template": "The capital of {{ country }}"}},
        )
        cases = [
            {"key": "fr", "variables": {"country": "France"}, "expected": "France"},
            {"key": "de", "variables": {"country": "Germany"}, "expected": "Germany"},
        ]
        suite = http.post(
            "/v1/suites",
            json={"name": "capitals-suite", "scorers": [{"name": "exact_match"}], "cases": cases},
        )
        assert suite.status_code == 201, suite.text
    page = _sign_in(browser, live_server, "qa@example.com")
    page.goto(f"{live_server.url}/ui/prompts/capitals")
    page.get_by_test_id("evaluations-link").click()
    for version in ("1", "2"):
        page.get_by_label("Version", exact=True).select_option(version)
        page.get_by_test_id("run-suite").click()
        expect(page.get_by_test_id("run-status")).to_contain_text("of 2 done")
        for _ in range(100):  # the server's in-process worker runs it
            if "succeeded" in (page.get_by_test_id("run-status").text_content() or ""):
                break
            page.wait_for_timeout(100)
            page.reload()
        expect(page.get_by_test_id("run-status")).to_contain_text("succeeded")
        expect(page.get_by_test_id("summary")).to_contain_text("exact_match")
        shots(page, f"run-v{version}")
        page.get_by_role("link", name="capitals").click()
    expect(page.locator("[data-testid=score-chart] svg circle")).to_have_count(2)  # one point per version
    expect(page.locator("[data-testid=score-chart] svg desc")).to_contain_text(
        "exact_match: 2 points from 0.00 to 1.00"
    )
    shots(page, "score-chart")
    page.get_by_role("link", name=re.compile("#2")).click()
    page.get_by_test_id("compare-runs").click()
    expect(page.get_by_test_id("comparison")).to_contain_text("exact_match")
    shots(page, "compare")


def test_admin_settings_and_the_audit_log(browser: Browser, live_server: LiveServer, shots: Shots) -> None:
    with live_server.client() as http:
        _user(http, "admin@example.com", "admin")
        _user(http, "reader@example.com", "viewer")
    page = _sign_in(browser, live_server, "admin@example.com")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Key name").fill("checkout-service")
    page.get_by_test_id("create-key").click()
    secret = page.get_by_test_id("secret").text_content() or ""
    assert secret.startswith("pk_")
    with live_server.client(key=secret) as runtime:
        assert runtime.get("/v1/prompts").status_code == 403  # a runtime key resolves, it does not browse
    page.get_by_role("link", name="Back to settings").click()
    page.get_by_label("Protect production").check()
    page.get_by_label("Approvals for production").fill("2")
    page.get_by_test_id("save-production").click()
    expect(page.get_by_label("Protect production")).to_be_checked()
    page.get_by_label("Member email").fill("newcomer@example.com")
    page.get_by_label("Member password").fill(PASSWORD)
    page.get_by_test_id("add-member").click()
    expect(page.get_by_test_id("members")).to_contain_text("newcomer@example.com")
    shots(page, "settings")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_test_id("audit")).to_contain_text("environment.updated")
    expect(page.get_by_test_id("audit")).to_contain_text("key.created")
    shots(page, "audit")
    with live_server.client() as http:
        production = next(e for e in http.get("/v1/environments").json() if e["name"] == "production")
        assert production["protected"] and production["required_approvals"] == 2

    reader = _sign_in(browser, live_server, "reader@example.com")
    expect(reader.get_by_role("link", name="Settings")).to_have_count(0)
    reader.goto(f"{live_server.url}/ui/settings")
    expect(reader.get_by_test_id("error")).to_contain_text("cannot change settings")
    csrf = reader.locator("input[name=csrf]").first.get_attribute("value") or ""
    refused = reader.request.post(
        f"{live_server.url}/ui/settings/key", form={"csrf": csrf, "name": "x", "role": "admin"}
    )
    assert refused.status == 403


def test_draft_saved_then_merged_through_a_conflict(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    with live_server.client() as http:
        _user(http, "writer@example.com", "editor")
        http.post(
            "/v1/prompts",
            json={
                "name": "letters",
                "content": {"type": "text", "template": "Dear {{ name }},\nThanks for writing.\nBest"},
            },
        )
    page = _sign_in(browser, live_server, "writer@example.com")
    page.goto(f"{live_server.url}/ui/prompts/letters")
    page.get_by_label("Template", exact=True).fill("Dear {{ name }},\nThank you so much for writing!\nBest")
    page.get_by_label("Commit message").fill("warmer thanks")
    page.get_by_test_id("save-draft").click()
    expect(page.get_by_test_id("draft-state")).to_contain_text("open · forked from v1")
    draft_url = page.url

    with live_server.client() as http:  # meanwhile someone changes the same line
        http.post(
            "/v1/prompts/letters/versions",
            json={
                "content": {
                    "type": "text",
                    "template": "Dear {{ name }},\nThanks a lot for your letter.\nBest",
                }
            },
        ).raise_for_status()

    page.goto(draft_url)
    page.get_by_test_id("merge").click()
    expect(page.get_by_test_id("conflicts")).to_contain_text("Thanks a lot for your letter.")
    expect(page.get_by_test_id("conflicts")).to_contain_text("Thank you so much for writing!")
    shots(page, "conflict")
    page.get_by_label("Template", exact=True).fill(
        "Dear {{ name }},\nThank you so much for your letter!\nBest"
    )
    page.get_by_test_id("rebase").check()
    page.get_by_test_id("save-draft").click()
    expect(page.get_by_test_id("draft-state")).to_contain_text("forked from v2")
    page.get_by_test_id("merge").click()
    expect(page.get_by_test_id("history")).to_contain_text("v3")
    shots(page, "merged")
    with live_server.client() as http:
        v3 = http.get("/v1/prompts/letters/versions/3").json()["content"]["template"]
        assert v3 == "Dear {{ name }},\nThank you so much for your letter!\nBest"


def test_every_ui_form_needs_the_csrf_token(live_server: LiveServer) -> None:
    """Every POST page (all of them, from the UI's routers) refuses a signed-in request without
    the token, before doing anything."""
    posts = [path for method, path in ui_routes() if method == "POST" and path != "/ui/login"]
    assert len(posts) >= 12 and "/ui/logout" in posts, posts
    with live_server.client() as http:
        _user(http, "boss@example.com", "admin")
        http.post("/v1/prompts", json={"name": "p", "content": {"type": "text", "template": "x"}})
        before = http.get("/v1/audit", params={"limit": 500}).json()["total"]
    with httpx.Client(base_url=live_server.url) as browserless:
        signed = browserless.post(
            "/ui/login", data={"email": "boss@example.com", "password": PASSWORD, "next": "/ui/prompts"}
        )
        assert signed.status_code == 303
        for path in posts:
            concrete = re.sub(r"\{name\}", "p", re.sub(r"\{\w+_id\}|\{what\}", "1", path))
            response = browserless.post(
                concrete, data={"environment": "production", "version": "1", "name": "x"}
            )
            assert response.status_code == 403 and "CSRF" in response.text, (path, response.status_code)
    with live_server.client() as http:
        after = http.get("/v1/audit", params={"limit": 500}).json()["total"]
    assert after == before + 1  # only the sign-in's session was recorded; no form did anything
