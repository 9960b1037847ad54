"""The OpenAPI document GET /v1/openapi.json serves: the file parley.api.openapi_gen writes into
the core package at build time (read once per execution environment, never generated here)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

FILE = "openapi.json"


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, object]
    paths: dict[str, object]


@cache
def document_text() -> str:
    return resources.files("parley.api").joinpath(FILE).read_text(encoding="utf-8")
