"""storage/resources.py: one repository for a project's resources and an organization's projects."""

from __future__ import annotations

import pytest

from parley.domain.chats import ChatRecord
from parley.domain.errors import Conflict
from parley.domain.keys import ProjectStored
from parley.storage.keys import ProjectRepository
from parley.storage.resources import ResourceRepository

pytestmark = pytest.mark.usefixtures("aws")
NOW = "2026-12-03T00:00:00Z"


def chat(chat_id: str, name: str, project_id: str = "proj_a") -> ChatRecord:
    return ChatRecord(
        id=chat_id, project_id=project_id, name=name, ai_provider_id="prov_x", created_at=NOW, updated_at=NOW
    )


def project(project_id: str, name: str, org_id: str = "org_a") -> ProjectStored:
    return ProjectStored(id=project_id, org_id=org_id, name=name, created_at=NOW, updated_at=NOW)


def test_a_resource_id_that_exists_is_refused_and_nothing_is_overwritten() -> None:
    chats = ResourceRepository("chat", ChatRecord)
    chats.put_new(chat("chat_01", "first"))
    with pytest.raises(Conflict) as refused:
        chats.put_new(chat("chat_01", "second"))
    assert refused.value.code == "already_exists"
    stored = chats.get("proj_a", "chat_01")
    assert stored is not None and stored.name == "first"


def test_a_project_insert_says_whether_it_wrote() -> None:
    projects = ProjectRepository()
    assert projects.insert(project("proj_1", "first")) is True
    assert projects.insert(project("proj_1", "second")) is False
    stored = projects.get("org_a", "proj_1")
    assert stored is not None and stored.name == "first"


def test_scopes_are_partitions_and_pages_run_in_each_kinds_order() -> None:
    chats = ResourceRepository("chat", ChatRecord)
    for n in range(3):
        chats.put_new(chat(f"chat_0{n}", f"c{n}"))
    chats.put_new(chat("chat_09", "other", project_id="proj_b"))
    first, after = chats.page("proj_a", 2, None)
    rest, end = chats.page("proj_a", 2, after)
    assert [c.id for c in first + rest] == ["chat_02", "chat_01", "chat_00"]  # newest first
    assert end is None

    projects = ProjectRepository()
    for n in range(3):
        projects.insert(project(f"proj_0{n}", f"p{n}"))
    projects.insert(project("proj_09", "other", org_id="org_b"))
    first_projects, after = projects.page("org_a", 2, None)
    more, end = projects.page("org_a", 2, after)
    assert [p.id for p in first_projects + more] == ["proj_00", "proj_01", "proj_02"]  # oldest first
    assert end is None
    assert projects.get("org_b", "proj_00") is None


def test_delete_says_whether_there_was_something_to_delete() -> None:
    projects = ProjectRepository()
    projects.insert(project("proj_1", "p"))
    assert projects.delete("org_a", "proj_1") is True
    assert projects.delete("org_a", "proj_1") is False
