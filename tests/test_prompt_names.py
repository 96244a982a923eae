"""Prompt names keep their case and are unique per project regardless of it (issue 22, item 1).

`movieCritic` and `Support/ReplyDraft` work through the native API, the SDK, the CLI, prompts as
files and the Langfuse client; a second spelling of an existing name is refused with a message
naming the existing prompt, also when both creates race; lookups are exact and a miss names the
stored spelling; migration 0011 adds the index, refuses data that would break it, and goes back.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from langfuse import Langfuse
from langfuse.api.core.http_client import _should_retry
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import IntegrityError

from promptkeeper.client import Client
from promptkeeper.compat.langfuse import public_key
from promptkeeper.db.migrate import alembic_config, upgrade
from promptkeeper.errors import Conflict
from promptkeeper.files import load_directory
from promptkeeper.tables import metadata
from tests.conftest import ADMIN_KEY, Backend, LiveServer
from tests.helpers import error_of, quote_name, run_cli, text_content


@pytest.fixture
def http(live_server: LiveServer) -> Any:
    with live_server.client() as client:
        yield client


def test_names_keep_their_case_in_the_api_and_the_sdk(live_server: LiveServer, http: httpx.Client) -> None:
    with Client(live_server.url, ADMIN_KEY, stream=False) as sdk:
        created = sdk.create_prompt("movieCritic", text_content("Rate {{ movie }}"))
        assert created["name"] == "movieCritic"
        sdk.deploy("movieCritic", "production", 1)
        assert sdk.get("movieCritic").render(movie="Dune") == "Rate Dune"
        with pytest.raises(Conflict, match="the prompt 'movieCritic' exists"):
            sdk.create_prompt("MovieCritic", text_content("x"))

    folder = http.post("/v1/prompts", json={"name": "Support/ReplyDraft", "content": text_content("Hi")})
    assert folder.status_code == 201 and folder.json()["name"] == "Support/ReplyDraft"
    with Client(live_server.url, ADMIN_KEY, stream=False) as sdk:
        assert sdk.get("Support/ReplyDraft", version=1).render() == "Hi"
        assert sdk.create_version("Support/ReplyDraft", text_content("Hello"))["number"] == 2
    assert http.get(f"/v1/prompts/{quote_name('Support/ReplyDraft')}").json()["name"] == "Support/ReplyDraft"
    names = [p["name"] for p in http.get("/v1/prompts").json()["items"]]
    assert sorted(names) == ["Support/ReplyDraft", "movieCritic"]

    for duplicate, existing in (("moviecritic", "movieCritic"), ("support/replydraft", "Support/ReplyDraft")):
        refused = http.post("/v1/prompts", json={"name": duplicate, "content": text_content("x")})
        assert refused.status_code == 409, refused.text
        error = error_of(refused)
        assert (
            f"the prompt '{existing}' exists" in error["message"] and "regardless of case" in error["message"]
        )
        assert error["details"] == {"prompt": duplicate, "existing": existing}
    assert sorted(p["name"] for p in http.get("/v1/prompts").json()["items"]) == sorted(
        names
    )  # nothing added

    # lookups are exact; a miss by another spelling names the stored one
    missing = http.get("/v1/prompts/MOVIECRITIC")
    assert missing.status_code == 404
    assert "did you mean 'movieCritic'" in error_of(missing)["message"]
    assert http.get("/v1/resolve/moviecritic").status_code == 404
    assert http.get("/v1/resolve/movieCritic").json()["name"] == "movieCritic"
    assert http.get("/v1/prompts", params={"search": "moviecritic"}).json()["total"] == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a|b", "(not '|')"),
        ("my prompt", "(not ' ')"),
        ("caf\u00e9", "(not '\u00e9')"),
        ("line\n", "(not '\\n')"),
        ("tab\tname", "(not '\\t')"),
        ("a/../b", "not '.' or '..'"),
        ("a//b", "non-empty"),
        ("a/", "non-empty"),
        ("/a", "starting with a letter or digit"),
        ("-a", "starting with a letter or digit"),
        ("a:b", "(not ':')"),
        ("a?b", "(not '?')"),
        ("a%2Fb", "(not '%')"),
        ("x" * 129, "1-128 characters"),
    ],
)
def test_unsafe_names_stay_refused(client: Any, name: str, problem: str) -> None:
    response = client.post("/v1/prompts", json={"name": name, "content": text_content("x")})
    assert response.status_code == 422, response.text
    message = error_of(response)["message"]
    assert "name" in message and problem in message, message


def test_the_cli_accepts_upper_case_names(live_server: LiveServer) -> None:
    url = live_server.url
    for name in ("movieCritic", "Support/ReplyDraft"):
        code, out, err = run_cli(url, "prompts", "create", name, "-t", "Rate {{ movie }}")
        assert code == 0 and out.strip() == f"created {name} v1", err
        code, out, err = run_cli(url, "prompts", "show", name)
        assert code == 0 and out.startswith(f"{name} v1 (text)"), err
    code, out, err = run_cli(url, "prompts", "create", "Team/Greeter", "-t", "Hello {{ name }}")
    assert code == 0 and out.strip() == "created Team/Greeter v1", err
    assert run_cli(url, "prompts", "deploy", "Team/Greeter", "1", "--env", "production")[0] == 0
    code, out, _ = run_cli(url, "render", "Team/Greeter", "--var", "name=Ada")
    assert code == 0 and out.strip() == "Hello Ada"
    code, out, err = run_cli(url, "prompts", "create", "team/greeter", "-t", "x")
    assert code == 1 and err.count("\n") == 1 and "the prompt 'Team/Greeter' exists" in err, err
    code, _, err = run_cli(url, "prompts", "show", "team/GREETER")
    assert code == 1 and "did you mean 'Team/Greeter'" in err, err


def test_prompts_as_files_with_upper_case_names(
    live_server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    http.post("/v1/prompts", json={"name": "Support/ReplyDraft", "content": text_content("Hi {{ n }}")})
    repo = tmp_path / "prompts"
    code, _, err = run_cli(live_server.url, "pull", str(repo), "--quiet")
    assert code == 0 and (repo / "Support" / "ReplyDraft.yaml").is_file(), err
    (repo / "movieCritic.yaml").write_text("name: movieCritic\ntype: text\ntemplate: 'Rate {{ movie }}'\n")
    code, _, err = run_cli(live_server.url, "push", str(repo), "--quiet")
    assert code == 0 and "1 new, 0 changed, 0 metadata only, 1 unchanged" in err, err
    assert http.get("/v1/prompts/movieCritic").json()["latest_version"] == 1

    # another spelling of a stored name: refused before anything is pushed
    other = tmp_path / "other"
    (other / "support").mkdir(parents=True)
    (other / "new.yaml").write_text("name: new\ntype: text\ntemplate: 'n'\n")
    (other / "support" / "replydraft.yaml").write_text(
        "name: support/replydraft\ntype: text\ntemplate: 'x'\n"
    )
    code, _, err = run_cli(live_server.url, "push", str(other), "--quiet")
    assert code == 1 and "the prompt 'Support/ReplyDraft' exists" in err, err
    assert http.get("/v1/prompts/new").status_code == 404

    # two files whose names differ only in case are one file on a case-insensitive file system
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "Critic.yaml").write_text("name: Critic\ntype: text\ntemplate: 'a'\n")
    (clash / "critic.yaml").write_text("name: critic\ntype: text\ntemplate: 'b'\n")
    loaded, errors = load_directory(clash)
    assert [f.name for f in loaded] == ["Critic"]
    assert len(errors) == 1 and "as 'Critic' (names are unique regardless of case)" in str(errors[0])


def test_the_langfuse_client_keeps_the_case(live_server: LiveServer, http: httpx.Client) -> None:
    created = http.post("/v1/keys", json={"name": "lf", "role": "editor"})
    secret = created.json()["secret"]
    langfuse = Langfuse(
        public_key=public_key(secret), secret_key=secret, host=live_server.url, tracing_enabled=False
    )
    for name in ("movieCritic", "Support/ReplyDraft"):
        made = langfuse.create_prompt(name=name, prompt="Rate {{movie}}", labels=["production"])
        assert (made.name, made.version) == (name, 1)
        fetched = langfuse.get_prompt(name, cache_ttl_seconds=0)
        assert fetched.name == name and fetched.compile(movie="Dune") == "Rate Dune"
    assert langfuse.create_prompt(name="movieCritic", prompt="v2 {{movie}}").version == 2
    assert sorted(p.name for p in langfuse.api.prompts.list().data) == ["Support/ReplyDraft", "movieCritic"]

    refused = httpx.post(
        f"{live_server.url}/api/public/v2/prompts",
        json={"name": "MovieCritic", "prompt": "x"},
        auth=(public_key(secret), secret),
    )
    assert refused.status_code == 400 and not _should_retry(refused)  # a refusal, sent once
    assert refused.json()["error"] == "InvalidRequestError"
    assert "the prompt 'movieCritic' exists" in refused.json()["message"]
    assert http.get("/v1/prompts/MovieCritic").status_code == 404
    with pytest.raises(Exception, match="did you mean 'movieCritic'"):
        langfuse.get_prompt("MovieCritic", cache_ttl_seconds=0, max_retries=0)
    assert http.get("/v1/prompts/movieCritic").json()["latest_version"] == 2


def _blocked_by(url: str, pid: int) -> bool:
    """Whether some session waits for a lock that the session `pid` holds."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
            return bool(connection.scalar(query, {"pid": pid}))
    finally:
        engine.dispose()


# PostgreSQL only: SQLite serializes writers (BEGIN IMMEDIATE), so the check cannot miss a concurrent create.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_create_racing_another_spelling_is_a_clean_409(backend: Backend, live_server: LiveServer) -> None:
    """The create checks for other spellings first, but a concurrent create that has not committed
    yet is invisible to that check: the unique index decides, and the loser answers 409."""
    engine = create_engine(backend.url)
    answer: dict[str, httpx.Response] = {}
    with engine.connect() as holder:
        project_id = holder.scalar(text("SELECT id FROM projects WHERE name = 'default'"))
        holder_pid = holder.scalar(text("SELECT pg_backend_pid()"))
        holder.execute(
            insert(metadata.tables["prompts"]).values(
                project_id=project_id, name="Racer", head_version=0, created_by="test"
            )
        )  # inserted, not committed: a create that is still in flight

        def create() -> None:
            with httpx.Client(
                base_url=live_server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as c:
                answer["racer"] = c.post("/v1/prompts", json={"name": "racer", "content": text_content("x")})

        thread = threading.Thread(target=create)
        thread.start()
        deadline = time.monotonic() + 60
        while not _blocked_by(backend.url, holder_pid):  # the server's insert waits on the index entry
            assert thread.is_alive(), answer["racer"].text
            assert time.monotonic() < deadline, "the racing create never reached the unique index"
            time.sleep(0.05)
        holder.commit()
    thread.join(timeout=60)
    engine.dispose()
    response = answer["racer"]
    assert response.status_code == 409, response.text
    assert error_of(response)["details"] == {"prompt": "racer", "existing": "Racer"}


def test_parallel_creates_of_two_spellings(live_server: LiveServer) -> None:
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def create(name: str) -> None:
        with live_server.client(timeout=60) as c:
            barrier.wait()
            results[name] = c.post(
                "/v1/prompts", json={"name": name, "content": text_content(name)}
            ).status_code

    threads = [threading.Thread(target=create, args=(name,)) for name in ("Pair", "pAIR")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results.values()) == [201, 409], results
    with live_server.client() as c:
        assert c.get("/v1/prompts", params={"search": "pair"}).json()["total"] == 1


def test_migration_0011_guards_indexes_and_goes_back(empty_backend: Backend) -> None:
    engine = create_engine(empty_backend.url)
    prompts, projects = metadata.tables["prompts"], metadata.tables["projects"]
    try:
        upgrade(engine, "0010")
        with engine.begin() as connection:
            project = connection.execute(insert(projects).values(name="p")).inserted_primary_key[0]
            for name in ("critic", "Critic"):  # written around the old rules, e.g. by hand
                connection.execute(insert(prompts).values(project_id=project, name=name, created_by="t"))
        with pytest.raises(RuntimeError, match=r"differ only in case: project \d+: 'critic' \(2 spellings\)"):
            upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE prompts SET name = 'critic-2' WHERE name = 'Critic'"))
        upgrade(engine)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(prompts).values(project_id=project, name="CRITIC", created_by="t"))
        with engine.begin() as connection:  # other projects keep their own names
            other = connection.execute(insert(projects).values(name="q")).inserted_primary_key[0]
            connection.execute(insert(prompts).values(project_id=other, name="Critic", created_by="t"))

        with engine.connect() as connection, connection.begin():
            command.downgrade(alembic_config(connection), "0010")
        with engine.begin() as connection:
            connection.execute(insert(prompts).values(project_id=project, name="CRITIC", created_by="t"))
        with engine.begin() as connection:
            connection.execute(text("UPDATE prompts SET name = 'critic-3' WHERE name = 'CRITIC'"))
        upgrade(engine)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(prompts).values(project_id=project, name="cRITIC", created_by="t"))
    finally:
        engine.dispose()
