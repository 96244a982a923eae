"""Resolve over HTTP: warm (served from the in-process cache) and cold (every request hits the
database), on SQLite and PostgreSQL, with a bare FastAPI endpoint measured in the same run.

    .venv/bin/python bench/resolve_http.py [--duration 10] [--connections 32] [--prompts 100]

One server process pinned to CPU 0, wrk pinned to CPU 1 (on a machine with 2+ CPUs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ADMIN_KEY, WrkResult, database, header, row, save, server, wrk  # noqa: E402

from promptkeeper.access.service import (  # noqa: E402
    DEFAULT_PROJECT,
    Actor,  # noqa: E402
    get_project,
)
from promptkeeper.bootstrap import bootstrap  # noqa: E402
from promptkeeper.config import Settings  # noqa: E402
from promptkeeper.db.engine import Database  # noqa: E402
from promptkeeper.deployments import releases
from promptkeeper.prompts import service  # noqa: E402
from promptkeeper.prompts.schemas import PromptCreate  # noqa: E402


def seed(url: str, count: int) -> list[str]:
    settings = Settings(database_url=url, admin_key=ADMIN_KEY)
    db = Database(settings)
    bootstrap(database=db, settings=settings)
    names = []
    with db.write_session() as session:
        project = get_project(session=session, name=DEFAULT_PROJECT)
        for index in range(count):
            name = f"bench/prompt-{index:04d}"
            data = PromptCreate.model_validate(
                {
                    "name": name,
                    "content": {
                        "type": "chat",
                        "messages": [
                            {
                                "role": "system",
                                "content": "You are a helpful assistant for {{ product }}. " * 4,
                            },
                            {"type": "placeholder", "name": "history"},
                            {"role": "user", "content": "{{ question }}"},
                        ],
                        "config": {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512},
                    },
                }
            )
            actor = Actor.system("bench", project.id)
            service.create_prompt(session=session, actor=actor, data=data)
            releases.deploy(
                session=session,
                project_id=project.id,
                name=name,
                environment="production",
                version=1,
                actor=actor,
            )
            names.append(name)
        session.commit()
    db.dispose()
    return names


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, WrkResult]:
    """warm: every request a cache hit; cold: every request a database query (L1 TTL 0);
    cold-1: the same with one connection, i.e. the latency of a single miss on an idle server."""
    results: dict[str, WrkResult] = {}
    with database(backend) as url:
        names = seed(url, args.prompts)
        paths = [f"/v1/resolve/{n.replace('/', '%2F')}?environment=production" for n in names]
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        env = {"PROMPTKEEPER_DATABASE_URL": url, "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY}
        for mode, ttl, connections in (
            ("warm", "60", args.connections),
            ("cold", "0", args.connections),
            ("cold-1", "0", 1),
        ):
            with server({**env, "PROMPTKEEPER_CACHE_L1_TTL": ttl}) as base:
                wrk(base, paths=paths, headers=headers, duration=2, connections=connections)  # warm-up
                results[mode] = wrk(
                    base, paths=paths, headers=headers, duration=args.duration, connections=connections
                )
    return results


def run_bare(args: argparse.Namespace) -> WrkResult:
    here = str(Path(__file__).parent)
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", "{port}", "--app-dir", here]
    with server({}, args=[*command, "--log-level", "warning"]) as base:
        wrk(base, paths=["/const"], headers={}, duration=2, connections=args.connections)
        return wrk(base, paths=["/const"], headers={}, duration=args.duration, connections=args.connections)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"wrk -c{args.connections} -d{args.duration:g}s, {args.prompts} prompts, server on one CPU")
    bare = run_bare(args)
    table: dict[str, object] = {"bare_fastapi": bare}
    print(header())
    print(row("bare FastAPI constant JSON", bare, 1.0))
    for backend in args.backends.split(","):
        for mode, result in run_backend(backend, args).items():
            table[f"{backend}_{mode}"] = result
            ratio = result.requests_per_second / bare.requests_per_second if mode == "warm" else None
            print(row(f"resolve {mode} ({backend})", result, ratio))
    print(f"saved {save('resolve_http', table)}")


if __name__ == "__main__":
    main()
