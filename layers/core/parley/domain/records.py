"""The base of every typed stored item."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StoredRecord(BaseModel):
    """A stored item, typed. Attributes the model does not name are kept (extra="allow"), so a
    read-modify-write never drops what another version of Parley stored."""

    model_config = ConfigDict(extra="allow")

    def stored(self) -> dict[str, Any]:
        """The attributes to write (None values are left out by the item codec)."""
        return self.model_dump()


class IdentifiedRecord(StoredRecord):
    """A record stored by id within its scope (a project, an organization)."""

    id: str


class ProjectRecord(IdentifiedRecord):
    """A resource of one project, stored by id."""

    project_id: str
