"""The UI shows composition: what a prompt includes, which prompts include it, and the dependants a
deploy of the included prompt changes, before it is confirmed (real Chromium, as in test_ui.py)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer
from tests.helpers import add_version, create_prompt, deploy
from tests.test_ui import Shots, _sign_in, _user, browser, shots

__all__ = ["browser", "shots"]  # fixtures used below


def test_prompt_page_shows_includes_and_dependants_and_a_deploy_lists_them(
    browser: Browser, live_server: LiveServer, shots: Shots
) -> None:
    with live_server.client() as http:
        _user(http, "pm@example.com", "editor")
        create_prompt(http, "shared/base", "Be brief.")
        add_version(http, "shared/base", "Be thorough.")
        deploy(http, "shared/base", "production", 1)
        create_prompt(http, "outer", "@@@prompt:name=shared/base|label=production@@@ Answer {{ q }}.")
        deploy(http, "outer", "production", 1)
    page = _sign_in(browser, live_server, "pm@example.com")

    page.goto(f"{live_server.url}/ui/prompts/outer")
    expect(page.get_by_test_id("includes")).to_contain_text("shared/base @ production in template: v1")
    shots(page, "includes")
    page.get_by_test_id("includes").get_by_role("link", name="shared/base").click()
    expect(page.get_by_test_id("prompt-name")).to_have_text("shared/base")
    expect(page.get_by_test_id("dependants")).to_contain_text(
        "outer v1 (follows production; live in production)"
    )
    shots(page, "dependants")

    page.get_by_label("Version for production").select_option("2")
    page.get_by_test_id("promote-production").click()
    expect(page.get_by_role("heading", name=re.compile("Deploy"))).to_be_visible()
    expect(page.get_by_test_id("affected")).to_contain_text("outer@production")
    shots(page, "confirm-lists-dependants")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("live-production")).to_have_text("v2")

    with live_server.client() as http:
        served = http.get("/v1/resolve/outer").json()
        assert served["content"]["template"] == "Be thorough. Answer {{ q }}."
        entry = http.get("/v1/audit", params={"prompt": "shared/base", "action": "deployment.created"}).json()
        assert entry["items"][0]["summary"]["after"]["dependants"] == ["outer@production"]
