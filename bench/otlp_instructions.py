"""OTLP ingestion in instructions: what the receiver's Python costs per span, counted by callgrind.

Why instructions and not seconds: on the 2-core machine this project is measured on, the same
CPU-bound code takes up to 60% longer from one half hour to the next (a loop of 10 million
additions: 0.8 to 1.2 s), so two timed runs of `bench/otlp_ingest.py` minutes apart disagree by
more than most changes are worth. `valgrind --tool=callgrind` counts the instructions executed,
which stay the same whatever else the machine is doing.

Setup as in `bench/otlp_ingest.py` (its prompt, monitor, experiment and spans, PostgreSQL). Then,
for each stage, one process under callgrind decodes `--batches` protobuf bodies of 512 spans and
takes them as far as that stage, through the receiver's own functions, each batch in a transaction
it rolls back (so every run sees the same database):

- parse: `decode.parse` and a walk over the spans;
- classify: + `service.classify` (the mapping of every span);
- store: + `service.prepare` and `service.write` (rows, registry round trip, COPY and statements).

Only the batches are counted (not startup, imports or the first, warming batch): the measured loop
runs as a ctypes callback and callgrind collects inside `_CallPythonObject` only. PostgreSQL's own
work is another process and is not counted.

Usage: .venv/bin/python bench/otlp_instructions.py [--batches 8] [--stages parse,classify,store]
(about a minute a stage; needs Debian's valgrind).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import database, save, server  # noqa: E402
from bench.otlp_ingest import _batches, seed, server_env  # noqa: E402

BATCH = 512
STAGES = ("parse", "classify", "store")


def child(path: str, stage: str, batches: int) -> None:
    """Run under callgrind: the first body warms imports, caches and the connection, uncounted."""
    from promptkeeper.config import Settings
    from promptkeeper.db.engine import Database
    from promptkeeper.otel import decode, service

    with open(path, "rb") as handle:
        data = pickle.load(handle)
    db = Database(Settings(database_url=data["url"], worker_in_process=False))

    def one(body: bytes) -> None:
        request = decode.parse(body, "protobuf")
        if stage == "parse":
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for _ in scope_spans.spans:
                        pass
            return
        batch = service.classify(request)
        if stage == "classify":
            return
        with db.write_session() as session:
            rows = service.prepare(session=session, project_id=1, batch=batch)
            service.write(session=session, project_id=1, batch=batch, rows=rows)
            session.rollback()

    one(data["bodies"][0])

    def measured() -> None:
        for body in data["bodies"][1 : 1 + batches]:
            one(body)

    ctypes.CFUNCTYPE(None)(measured)()
    db.dispose()


def count(path: str, stage: str, batches: int) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=_CallPythonObject",
                f"--callgrind-out-file={scratch}/callgrind.out",
                sys.executable,
                __file__,
                "--child",
                path,
                stage,
                str(batches),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of stage {stage} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args()
    stages = [stage for stage in args.stages.split(",") if stage]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)} (choose from {', '.join(STAGES)})")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    spans = args.batches * BATCH
    per_span: dict[str, float] = {}
    with database("postgresql", schema=f"pk_bench_otlp_instr_{os.getpid()}") as url:
        with server(server_env(url), ready_timeout=300) as base:
            experiment_id, variants = seed(base)
        requests = _batches("instr", (args.batches + 1) * BATCH, BATCH, experiment_id, variants)
        with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as handle:
            pickle.dump({"url": url, "bodies": [r.SerializeToString() for r in requests]}, handle)
        try:
            for stage in stages:
                print(f"{stage}: counting {spans:,} spans under callgrind ...", file=sys.stderr, flush=True)
                per_span[stage] = count(handle.name, stage, args.batches) / spans
        finally:
            os.unlink(handle.name)
    print(f"OTLP ingestion, instructions per span (callgrind, {args.batches} batches of {BATCH}):")
    previous = 0.0
    for stage in stages:
        added = f" (+{per_span[stage] - previous:,.0f})" if previous else ""
        print(f"  {stage:<9} {per_span[stage]:>10,.0f}{added}")
        previous = per_span[stage]
    print(f"saved {save('otlp_instructions', {'batches': args.batches, 'instructions_per_span': per_span})}")


if __name__ == "__main__":
    main()
