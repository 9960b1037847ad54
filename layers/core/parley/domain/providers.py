"""AI provider resources (seed 003's AI providers; seed 000's BYO model keys).

The API key and the values of extra `headers` are write-only: any header may carry a
credential (`X-Goog-Api-Key`, `Ocp-Apim-Subscription-Key`, `Proxy-Authorization`, ...), so every
value goes to the provider's AWS Secrets Manager secret with the key, and only `api_key_set`,
the header names and the last four characters (of a header value only when it is long enough
that they give little away) ever come back.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from parley.domain.records import ProjectRecord

ProviderType = Literal["echo", "openai", "anthropic", "bedrock"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Set by Parley or the adapters (the key goes in api_key), or hop-by-hop headers that would
# change how the request itself is framed or forwarded.
_FORBIDDEN_HEADERS = frozenset(
    {
        "authorization",
        "api-key",
        "x-api-key",
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
MAX_HEADERS = 20
# A header value's last four characters are shown only from this length on.
HEADER_HINT_MIN_LENGTH = 12


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class FallbackTarget(_Strict):
    """Where to go when a provider's retries run out: a stored provider and a model."""

    provider_id: str = Field(pattern=r"^aip_[0-9A-Z]{26}$")
    model: str | None = Field(default=None, min_length=1, max_length=256)


def _check_headers(headers: dict[str, str | None] | None) -> dict[str, str | None] | None:
    """Names, values and count of extra headers (a None value, in a PATCH, removes the header)."""
    if headers is None:
        return None
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} extra headers")
    seen: set[str] = set()
    for name, value in headers.items():
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise ValueError(f"{name!r} is set by Parley or not allowed; put the key in api_key")
        if name.lower() in seen:
            raise ValueError(f"{name!r} is given twice (header names are case-insensitive)")
        seen.add(name.lower())
        if value is not None and (
            not value or len(value) > 1024 or any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value)
        ):
            raise ValueError(f"the value of {name!r} is empty, too long, or has control characters")
    return headers


class HeaderHint(BaseModel):
    """What the API shows of a stored header: that it is set, and maybe its last 4 characters."""

    set: Literal[True] = True
    last4: str | None = None

    @classmethod
    def of(cls, value: str) -> HeaderHint:
        return cls(last4=value[-4:] if len(value) >= HEADER_HINT_MIN_LENGTH else None)


class ProviderCreate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"type": "echo", "name": "echo-main", "default_model": "echo"}]}
    )

    type: ProviderType
    name: str = Field(pattern=NAME_PATTERN)
    base_url: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, min_length=1, max_length=256)
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=8192)
    api_version: str | None = Field(default=None, max_length=64, description="Azure OpenAI api-version")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="Bedrock region")
    headers: dict[str, str] | None = Field(
        default=None, description="Extra request headers; write-only (values go to Secrets Manager)"
    )
    fallbacks: list[FallbackTarget] = Field(default_factory=list, max_length=5)
    is_default: bool = False

    _headers = field_validator("headers")(_check_headers)


class ProviderUpdate(_Strict):
    """PATCH: only the fields present change; `null` clears an optional field.

    `headers` merges (RFC 7396), since stored values cannot be read back to resend them: a
    value sets or replaces that header (names match case-insensitively), `null` removes it,
    headers not named stay; `headers: null` removes them all."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    base_url: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, min_length=1, max_length=256)
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=8192)
    api_version: str | None = Field(default=None, max_length=64)
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    headers: dict[str, str | None] | None = None
    fallbacks: list[FallbackTarget] | None = Field(default=None, max_length=5)
    is_default: bool | None = None

    _headers = field_validator("headers")(_check_headers)


class AIProvider(BaseModel):
    """A stored provider as the API returns it (never the key, never a header value)."""

    id: str
    object: Literal["ai_provider"] = "ai_provider"
    project_id: str
    type: ProviderType
    name: str
    base_url: str | None = None
    default_model: str | None = None
    api_version: str | None = None
    region: str | None = None
    headers: dict[str, HeaderHint] = Field(default_factory=dict, description="Extra headers: names, never values")
    fallbacks: list[FallbackTarget] = Field(default_factory=list)
    is_default: bool = False
    api_key_set: bool = False
    api_key_last4: str | None = None
    created_at: str
    updated_at: str
    version: int = 1


class ProviderRecord(ProjectRecord):
    """A stored provider: what the API shows, plus where its credentials are. The key and the
    header values live in the secret named `secret_name`; the record keeps `api_key_last4` and,
    per header, its hint. `headers` holds plain-text values only in records written before
    header values moved to the secret (moved by the provider's next update)."""

    type: ProviderType
    name: str
    base_url: str | None = None
    default_model: str | None = None
    api_version: str | None = None
    region: str | None = None
    fallbacks: list[FallbackTarget] = Field(default_factory=list)
    created_at: str
    updated_at: str
    version: int = 1
    secret_name: str | None = None
    api_key_last4: str | None = None
    secret_headers: dict[str, HeaderHint] | None = None
    headers: dict[str, str] | None = None
