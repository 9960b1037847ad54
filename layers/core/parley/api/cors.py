"""CORS: one configuration for API Gateway's preflight (CDK's `default_cors_preflight_options`)
and the local server's, so a browser client that works locally works deployed.

Origins come from the CDK context `cors_allow_origins` in AWS (none by default: no preflight
is answered) and from PARLEY_CORS_ALLOW_ORIGINS on the local server (any origin by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Request-Id",
    "Accept",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Retry-Count",
)
ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE", "OPTIONS")
EXPOSE_HEADERS = ("x-request-id", "Retry-After", "Idempotent-Replayed", "parley-dropped-params")
MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ALLOW_HEADERS
    allow_methods: tuple[str, ...] = ALLOW_METHODS
    expose_headers: tuple[str, ...] = EXPOSE_HEADERS
    max_age_seconds: int = MAX_AGE_SECONDS

    @classmethod
    def from_origins(cls, origins: str | Iterable[str] | None) -> CorsConfig:
        """From a comma-separated list (or a list); None keeps the default (any origin)."""
        if origins is None:
            return cls()
        values = origins.split(",") if isinstance(origins, str) else list(origins)
        return cls(allow_origins=tuple(v.strip() for v in values if v.strip()))

    @property
    def enabled(self) -> bool:
        return bool(self.allow_origins)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request's Origin, or None if not allowed."""
        if not origin or not self.enabled:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def preflight_headers(self, origin: str | None) -> dict[str, str] | None:
        """The headers of a preflight answer (None: the origin is not allowed)."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return None
        return {
            **self._vary(allowed),
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Methods": ",".join(self.allow_methods),
            "Access-Control-Allow-Headers": ",".join(self.allow_headers),
            "Access-Control-Max-Age": str(self.max_age_seconds),
        }

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """The headers an actual (non-preflight) response carries for a cross-origin caller."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return {}
        return {
            **self._vary(allowed),
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Expose-Headers": ",".join(self.expose_headers),
        }

    @staticmethod
    def _vary(allowed: str) -> dict[str, str]:
        return {} if allowed == "*" else {"Vary": "Origin"}
