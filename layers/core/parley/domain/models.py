"""OpenAI's model objects (GET /v1/models): the models an API key can name in a completion."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int  # Unix seconds: when the provider that serves it was stored (0 for the built-in echo)
    owned_by: str  # the stored provider's name ("parley" for the built-in echo)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
