"""AI provider resources (seed 003's AI providers; seed 000's BYO model keys).

The API key is write-only: it goes to AWS Secrets Manager and only `api_key_set` and its last
four characters ever come back.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ProviderType = Literal["echo", "openai", "anthropic", "bedrock"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_FORBIDDEN_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "host", "content-length", "content-type"})


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class FallbackTarget(_Strict):
    """Where to go when a provider's retries run out: a stored provider and a model."""

    provider_id: str = Field(pattern=r"^aip_[0-9A-Z]{26}$")
    model: str | None = Field(default=None, min_length=1, max_length=256)


def _check_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if len(headers) > 20:
        raise ValueError("at most 20 extra headers")
    for name, value in headers.items():
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise ValueError(f"{name!r} is set by Parley; put the key in api_key")
        if len(value) > 1024 or "\n" in value or "\r" in value:
            raise ValueError(f"the value of {name!r} is too long or has line breaks")
    return headers


class ProviderCreate(_Strict):
    type: ProviderType
    name: str = Field(pattern=NAME_PATTERN)
    base_url: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, min_length=1, max_length=256)
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=8192)
    api_version: str | None = Field(default=None, max_length=64, description="Azure OpenAI api-version")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="Bedrock region")
    headers: dict[str, str] | None = None
    fallbacks: list[FallbackTarget] = Field(default_factory=list, max_length=5)
    is_default: bool = False

    _headers = field_validator("headers")(_check_headers)


class ProviderUpdate(_Strict):
    """PATCH: only the fields present change; `null` clears an optional field."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    base_url: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, min_length=1, max_length=256)
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=8192)
    api_version: str | None = Field(default=None, max_length=64)
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    headers: dict[str, str] | None = None
    fallbacks: list[FallbackTarget] | None = Field(default=None, max_length=5)
    is_default: bool | None = None

    _headers = field_validator("headers")(_check_headers)


class AIProvider(BaseModel):
    """A stored provider as the API returns it (never the key)."""

    id: str
    object: Literal["ai_provider"] = "ai_provider"
    project_id: str
    type: ProviderType
    name: str
    base_url: str | None = None
    default_model: str | None = None
    api_version: str | None = None
    region: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    fallbacks: list[FallbackTarget] = Field(default_factory=list)
    is_default: bool = False
    api_key_set: bool = False
    api_key_last4: str | None = None
    created_at: str
    updated_at: str
    version: int = 1
