"""Response shapes the api layer adds around the domain's resources (the list envelope is
parley.api.lists.Page, the error model parley.api.errors.ErrorResponse)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Deleted(BaseModel):
    """What a DELETE answers: `{"id", "object", "deleted": true}`."""

    id: str
    object: str
    deleted: Literal[True] = True
