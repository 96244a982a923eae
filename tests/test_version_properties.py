"""Version numbering under random interleavings of creates, edits and stale edits (Hypothesis stateful).

Against the real app on both backends. A model keeps, per prompt, the list of contents it expects;
after every step the touched prompt's versions must be exactly 1..n with the right parents and
contents, a stale `base_version` must be a 409 naming the head that stores nothing, and the
prompt's `latest_version` must be the head. test_concurrency.py covers truly parallel writers.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from promptkeeper.app import create_app
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import error_of, text_content

PROMPTS = 3
prompt_index = st.integers(0, PROMPTS - 1)


def _machine(client: TestClient) -> type[RuleBasedStateMachine]:
    class VersionNumbering(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            run = uuid.uuid4().hex[:8]  # the database outlives one example: fresh names each time
            self.names = [f"prop-{run}-{i}" for i in range(PROMPTS)]
            self.model: dict[str, list[str]] = {}
            self.counter = 0

        def _template(self) -> str:
            self.counter += 1
            return f"edit {self.counter} {{{{ x }}}}"

        def _check(self, name: str) -> None:
            expected = self.model[name]
            listing = client.get(f"/v1/prompts/{name}/versions", params={"limit": 100}).json()
            numbers = [v["number"] for v in listing["items"]]
            assert numbers == list(range(len(expected), 0, -1)), numbers
            assert listing["total"] == len(expected)
            for version in listing["items"]:
                assert version["content"]["template"] == expected[version["number"] - 1]
                assert version["parent"] == (version["number"] - 1 or None)
            assert client.get(f"/v1/prompts/{name}").json()["latest_version"] == len(expected)

        @rule(i=prompt_index)
        def create(self, i: int) -> None:
            name, template = self.names[i], self._template()
            response = client.post("/v1/prompts", json={"name": name, "content": text_content(template)})
            if name in self.model:
                assert response.status_code == 409, response.text
            else:
                assert response.status_code == 201, response.text
                assert response.json()["latest_version"] == 1
                self.model[name] = [template]
            self._check(name)

        @precondition(lambda self: bool(self.model))
        @rule(i=prompt_index, with_base=st.booleans())
        def add_version(self, i: int, with_base: bool) -> None:
            name = self.names[i]
            if name not in self.model:
                return
            body: dict[str, object] = {"content": text_content(self._template())}
            if with_base:
                body["base_version"] = len(self.model[name])
            response = client.post(f"/v1/prompts/{name}/versions", json=body)
            assert response.status_code == 201, response.text
            created = response.json()
            assert (created["number"], created["parent"]) == (
                len(self.model[name]) + 1,
                len(self.model[name]),
            )
            self.model[name].append(body["content"]["template"])  # type: ignore[index]
            self._check(name)

        @precondition(lambda self: any(len(v) >= 2 for v in self.model.values()))
        @rule(i=prompt_index, lag=st.integers(1, 5))
        def stale_edit(self, i: int, lag: int) -> None:
            name = self.names[i]
            head = len(self.model.get(name, []))
            if head < 2:
                return
            base = max(1, head - lag)
            response = client.post(
                f"/v1/prompts/{name}/versions",
                json={"content": text_content(self._template()), "base_version": base},
            )
            assert response.status_code == 409, response.text
            assert error_of(response)["details"]["head_version"] == head
            self._check(name)

        @precondition(lambda self: bool(self.model))
        @rule(i=prompt_index)
        def unchanged_content(self, i: int) -> None:
            name = self.names[i]
            if name not in self.model:
                return
            response = client.post(
                f"/v1/prompts/{name}/versions", json={"content": text_content(self.model[name][-1])}
            )
            assert response.status_code == 409, response.text
            self._check(name)

        def teardown(self) -> None:
            for name in self.model:
                self._check(name)

    return VersionNumbering


def test_version_numbers_are_gapless_under_random_interleavings(backend: Backend, tmp_path: Path) -> None:
    app = create_app(make_settings(backend, tmp_path))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        run_state_machine_as_test(
            _machine(client), settings=settings(max_examples=12, stateful_step_count=15)
        )
