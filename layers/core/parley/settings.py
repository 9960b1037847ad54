"""Settings, read from the environment on first use (never at import time) and injectable.

Every setting has a default that suits the local server, except the stage: it defaults to
`prod`, so a deployed function missing PARLEY_STAGE keeps the egress checks on (https, public
addresses) instead of failing open. The local server and the tests set PARLEY_STAGE=local
(parley.runtime.local.LOCAL_ENV). In Lambda, CDK sets the table names and the stage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

TABLES = ("keys", "conversations", "messages", "chats", "usage", "idempotency")


@dataclass(frozen=True)
class Settings:
    stage: str = "prod"
    region: str = "us-east-1"
    tables: Mapping[str, str] = field(default_factory=lambda: {t: f"parley-{t}" for t in TABLES})
    documents_bucket: str = "parley-documents"
    # where a usage record goes when DynamoDB would not take it (folded in by the sweep); by name
    # locally, by URL in AWS (set by CDK)
    metering_queue: str = "parley-metering"
    # events: the EventBridge bus the emitter puts Parley's events on; the queue its webhook rule
    # feeds (one message per event); the queue of webhook deliveries (one message per attempt).
    # Queues by name locally, by URL in AWS (set by CDK).
    event_bus: str = "parley-events"
    events_queue: str = "parley-webhook-events"
    deliveries_queue: str = "parley-webhook-deliveries"
    # where a stream batch the emitter keeps failing on is reported (the mapping's on-failure destination)
    events_dlq: str = "parley-events-failures"
    # documents of knowledge indexes waiting for the ingestion worker (by name locally, URL in AWS)
    ingest_queue: str = "parley-ingest"
    echo_delay_ms: int = 0
    max_body_bytes: int = 1_048_576
    service_name: str = "parley"
    cursor_secret: str = ""  # name or ARN of the cursor-signing key's secret (outside local mode); set by CDK
    # how long a warm environment reuses a provider (record, default, credentials) for model calls
    provider_cache_seconds: int = 30
    # search (parley.search.factory): "local" (SQLite FTS5 + numpy, one file at search_path) or
    # "opensearch" (OpenSearch Serverless at search_endpoint); empty: local in local mode, else opensearch
    search_engine: str = ""
    search_path: str = ""  # the local engine's file; the local server sets PARLEY_SEARCH_PATH
    search_endpoint: str = ""  # https://<collection id>.<region>.aoss.amazonaws.com (set by CDK)
    search_region: str = ""  # empty: the settings' region
    search_index_prefix: str = "parley"
    # the knn_vector dimension of OpenSearch's chunks index: every knowledge index of the deployment
    # embeds to it (1024: Titan Text Embeddings V2's default and Cohere Embed v3's; OpenAI's
    # text-embedding-3 models shorten to it with `dimensions`)
    search_dimension: int = 1024
    # PARLEY_LOG_CONTENT: log request bodies (message content) for debugging a stage; never on by
    # default, and never the headers (API keys) even when on
    log_content: bool = False
    # Browser origins whose requests the functions answer with CORS headers (comma-separated, "*"
    # any); empty: none. CDK sets it from the context cors_allow_origins, as API Gateway's preflight.
    cors_allow_origins: str = ""

    @property
    def local(self) -> bool:
        return self.stage == "local"

    def table(self, logical: str) -> str:
        return self.tables[logical]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        tables = {t: env.get(f"PARLEY_TABLE_{t.upper()}", defaults.tables[t]) for t in TABLES}
        return cls(
            stage=env.get("PARLEY_STAGE", defaults.stage),
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", defaults.region)),
            tables=tables,
            documents_bucket=env.get("PARLEY_DOCUMENTS_BUCKET", defaults.documents_bucket),
            metering_queue=env.get("PARLEY_METERING_QUEUE", defaults.metering_queue),
            event_bus=env.get("PARLEY_EVENT_BUS", defaults.event_bus),
            events_queue=env.get("PARLEY_EVENTS_QUEUE", defaults.events_queue),
            deliveries_queue=env.get("PARLEY_DELIVERIES_QUEUE", defaults.deliveries_queue),
            events_dlq=env.get("PARLEY_EVENTS_DLQ", defaults.events_dlq),
            ingest_queue=env.get("PARLEY_INGEST_QUEUE", defaults.ingest_queue),
            echo_delay_ms=_int(env, "PARLEY_ECHO_DELAY_MS", defaults.echo_delay_ms, minimum=0),
            max_body_bytes=_int(env, "PARLEY_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1),
            service_name=env.get("POWERTOOLS_SERVICE_NAME", defaults.service_name),
            cursor_secret=env.get("PARLEY_CURSOR_SECRET", defaults.cursor_secret),
            provider_cache_seconds=_int(
                env, "PARLEY_PROVIDER_CACHE_SECONDS", defaults.provider_cache_seconds, minimum=0
            ),
            search_engine=env.get("PARLEY_SEARCH_ENGINE", defaults.search_engine),
            search_path=env.get("PARLEY_SEARCH_PATH", defaults.search_path),
            search_endpoint=env.get("PARLEY_SEARCH_ENDPOINT", defaults.search_endpoint),
            search_region=env.get("PARLEY_SEARCH_REGION", defaults.search_region),
            search_index_prefix=env.get("PARLEY_SEARCH_INDEX_PREFIX", defaults.search_index_prefix),
            search_dimension=_int(env, "PARLEY_SEARCH_DIMENSION", defaults.search_dimension, minimum=1),
            log_content=env.get("PARLEY_LOG_CONTENT", "").strip().lower() in {"1", "true", "yes", "on"},
            cors_allow_origins=env.get("PARLEY_CORS_ALLOW_ORIGINS", defaults.cors_allow_origins),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, read from the environment the first time they are needed."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Inject settings (tests, the local server); None makes the next call re-read the environment."""
    global _settings
    _settings = settings
