"""Settings: the only module that reads environment variables.

Everything else receives a `Settings` object (`create_app(settings)`, `Database(settings)`), so
tests build the settings they need instead of patching the environment.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from promptkeeper.core.egress import parse_allow_entry


class Settings(BaseSettings):
    """Server settings; each field is read from `PROMPTKEEPER_<FIELD>` (see docs/operations.md)."""

    model_config = SettingsConfigDict(env_prefix="PROMPTKEEPER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./promptkeeper.db",
        description="SQLAlchemy URL. SQLite for the embedded mode, postgresql:// for production.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the shared cache and invalidation bus; unset = in-process only.",
    )
    redis_prefix: str = Field(
        default="promptkeeper",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of Redis keys and of the pub/sub channel (to share one Redis).",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key. Unset and empty database: one is generated and printed.",
    )
    admin_key_file: Path = Field(
        default=Path(".promptkeeper/admin-key"),
        description="Where a generated admin key is written (mode 0600).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key(s) that encrypt stored secrets such as webhook signing secrets (32+ characters; "
        "comma-separated to rotate: the first encrypts, all decrypt). Unset: a key is generated into "
        "`secret_key_file`. Every instance and worker needs the same key.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="Where a generated secret key is kept (mode 0600); default: `secret-key` beside "
        "`admin_key_file`.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `promptkeeper serve` binds to.")
    port: int = Field(default=8700, ge=1, le=65535, description="Port `promptkeeper serve` listens on.")
    auto_migrate: bool = Field(
        default=True,
        description="Apply pending migrations on start (an empty database is always migrated).",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per server process.")
    db_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a database connection or lock before 503."
    )
    cache_l1_ttl: float = Field(
        default=60.0, ge=0, description="Seconds a resolved prompt stays in the in-process cache."
    )
    cache_l2_ttl: float = Field(default=300.0, ge=0, description="Seconds a resolved prompt stays in Redis.")
    cache_epoch_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between checks that catch invalidations lost by pub/sub.",
    )
    stream_keepalive: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive comments on /v1/stream."
    )
    auth_cache_ttl: float = Field(
        default=10.0, ge=0, description="Seconds an authenticated API key is remembered in-process."
    )
    auth_stale_ttl: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds past `auth_cache_ttl` that a key this instance verified is still accepted "
        "while the database is unavailable (stale-if-error); 0: never.",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed (`*`: any peer). Unset: none, the peer's address counts.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Largest request body accepted; bigger ones get 413 before being read. 0: no limit.",
    )
    auth_failure_limit: int = Field(
        default=20,
        ge=0,
        description="Failed authentications (bad keys, tokens or passwords) a client address may make "
        "per `auth_failure_window` on one instance before it gets 429; 0 turns the limit off.",
    )
    auth_failure_window: float = Field(
        default=60.0, gt=0, description="Seconds over which failed authentications are counted."
    )
    session_ttl: float = Field(
        default=43_200.0, gt=0, description="Seconds a login session (`POST /v1/auth/login`) stays valid."
    )
    webhook_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a webhook receiver.")
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts at one webhook delivery before it is marked failed."
    )
    webhook_retry_base: float = Field(
        default=2.0,
        gt=0,
        description="Seconds before the first retry of a failed webhook delivery; doubles on each retry.",
    )
    webhook_concurrency: int = Field(
        default=64, ge=1, le=4096, description="Webhook deliveries in flight at once per server process."
    )
    webhook_project_concurrency: int = Field(
        default=4,
        ge=1,
        le=4096,
        description="Webhook deliveries of one project in flight at once per server process, so that one "
        "project's slow receivers cannot take every slot.",
    )
    webhook_egress: Literal["auto", "public", "any"] = Field(
        default="auto",
        description="Where webhooks may connect: `public` (globally routable addresses only, plus "
        "`webhook_allow`), `any`, or `auto`: `public` with PostgreSQL (production), `any` with SQLite.",
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks (`10.1.0.0/16`, `127.0.0.1`) and host names (`hooks.corp`, `*.corp`) webhooks "
        "may reach although `public` refuses them; comma-separated.",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint for the `openai` provider (unset: OpenAI)."
    )
    openai_api_key: SecretStr | None = Field(default=None, description="API key of the `openai` provider.")
    anthropic_base_url: str | None = Field(
        default=None, description="Endpoint of the `anthropic` provider (unset: Anthropic's API)."
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, description="API key of the `anthropic` provider."
    )
    provider_timeout: float = Field(default=30.0, gt=0, description="Seconds one model call may take.")
    provider_max_retries: int = Field(
        default=3, ge=0, le=20, description="Retries of a model call that failed with 429, 5xx or a timeout."
    )
    provider_retry_base: float = Field(
        default=0.5,
        ge=0,
        description="Seconds before the first retry of a model call; doubles.",
    )
    provider_concurrency: int = Field(
        default=8, ge=1, le=512, description="Model calls in flight at once per evaluation run (default)."
    )
    build_routes_at_start: bool = Field(
        default=True,
        description="Build the routes' request handling at start-up (about 0.3 s of CPU), not during the "
        "first requests, which would wait for it.",
    )
    worker_in_process: bool = Field(
        default=True,
        description="Run evaluation jobs inside each server process (embedded mode); off when workers run.",
    )
    worker_lease: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a worker holds a job unrenewed before another may take it.",
    )
    worker_poll_interval: float = Field(default=1.0, gt=0, description="Seconds between checks for new jobs.")
    monitor_batch: int = Field(
        default=200, ge=1, le=10_000, description="Generations a worker claims for scoring at a time."
    )
    monitor_judge_rate: float = Field(
        default=2.0,
        gt=0,
        description="LLM-judge calls per second per worker when scoring production outputs.",
    )
    monitor_look_interval: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between a worker's looks at every monitor, for evidence that arrives "
        "without scoring (feedback) and breaches waiting for their confirming looks.",
    )
    experiment_update_interval: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between bandit weight updates and guardrail checks of running experiments.",
    )
    log_level: str = Field(default="info", description="Python log level name.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` lines, or one JSON object per line (`json`) for log pipelines."
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector (`http://collector:4318`) to send OpenTelemetry traces to; "
        "needs the `otel` extra. Unset: no tracing.",
    )
    otel_service_name: str = Field(default="promptkeeper", description="`service.name` of the spans.")
    otlp_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest OTLP export body accepted on `/otlp/v1/traces` once gunzipped; bigger ones get "
        "413 (the compressed body is bounded by PROMPTKEEPER_MAX_BODY_BYTES).",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: str | None) -> str | None:
        # uvicorn would silently treat a host name as "never matches": refuse it here instead.
        if value is None or not value.strip():
            return None
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (such as 10.0.0.0/8)") from None
        return ",".join(entries)

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split_allow_list(cls, value: object) -> object:
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("webhook_allow")
    @classmethod
    def _check_allow_list(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allow_entry(entry)
        return value

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        # psycopg 3 is the driver we ship; accept the plain scheme people copy from their provider.
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+psycopg://" + value[len(plain) :]
        return value

    def local_server_file(self) -> Path:
        """Where `serve` leaves its address for a CLI started in the same folder."""
        return self.admin_key_file.parent / "server.json"

    def local_url(self) -> str:
        """Where a client on this machine reaches `serve`: a wildcard bind is no address to dial."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
