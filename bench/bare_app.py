"""The baseline: a bare FastAPI endpoint returning a constant JSON body of similar size."""

from fastapi import FastAPI

app = FastAPI()

BODY = {
    "name": "bench/prompt-0000",
    "version": 1,
    "environment": "production",
    "content": {
        "type": "chat",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for {{ product }}. " * 4},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "examples": [],
        "config": {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512},
    },
    "variables": ["product", "question"],
    "placeholders": ["history"],
    "revision": 1,
    "deployed_at": "2026-11-24T00:00:00Z",
    "at": None,
}


@app.get("/const")
async def const() -> dict[str, object]:
    return BODY


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
