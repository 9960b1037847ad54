"""Chats (stored completion configurations), documents and document_id messages (seed 003)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.domain.documents import MAX_DOCUMENT_BYTES
from parley.domain.principal import Principal
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def provider(api: Api, **fields: Any) -> str:
    body = {"type": "echo", "name": "local-echo", "default_model": "echo", **fields}
    return str(api.call("providers_create", body).body["id"])


def chat(api: Api, provider_id: str, **fields: Any) -> dict[str, Any]:
    reply = api.call(
        "chats_create",
        {
            "ai_provider_id": provider_id,
            "name": "Support Assistant",
            "system_message": "You are a helpful support assistant.",
            **fields,
        },
    )
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def complete(api: Api, chat_id: str, messages: list[dict[str, Any]], **fields: Any) -> Any:
    return api.call("chats_complete", {"messages": messages, **fields}, path={"chat_id": chat_id})


def test_chat_crud(api: Api) -> None:
    created = chat(api, provider(api))
    assert created["id"].startswith("cht_")
    assert (created["project_id"], created["model"]) == ("proj_a", None)
    assert api.call("chats_get", path={"chat_id": created["id"]}).body == created
    updated = api.call("chats_update", {"name": "Billing", "model": "echo"}, path={"chat_id": created["id"]}).body
    assert (updated["name"], updated["model"]) == ("Billing", "echo")
    listed = api.call("chats_list").body
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    assert api.call("chats_delete", path={"chat_id": created["id"]}).body["deleted"] is True
    assert api.call("chats_get", path={"chat_id": created["id"]}).status == 404


def test_a_chat_needs_a_provider_of_this_project(api: Api) -> None:
    foreign = str(api.call("providers_create", {"type": "echo", "name": "theirs"}, principal=STRANGER).body["id"])
    for provider_id in (foreign, "aip_01JZ00000000000000000000AA"):
        reply = api.call("chats_create", {"ai_provider_id": provider_id})
        assert reply.status == 400
        assert reply.body["error"]["param"] == "ai_provider_id"
    assert api.call("chats_create", {}).body["error"]["param"] == "ai_provider_id"


def test_per_chat_completion_uses_the_chats_provider_model_and_system_message(api: Api, received: list[Any]) -> None:
    created = chat(api, provider(api))
    reply = complete(api, created["id"], [{"role": "user", "content": "Hello!"}], model="ignored-by-the-chat")
    assert reply.status == 200, reply.body
    assert reply.body["model"] == "echo"  # the provider's default_model
    assert reply.body["choices"][0]["message"]["content"] == "Hello!"
    assert received[-1] == [("system", "You are a helpful support assistant."), ("user", "Hello!")]
    audit = api.call("audit_events_list").body["data"][0]
    assert (audit["route"], audit["resource_ids"]) == ("POST /v1/chats/{chat_id}/completions", [created["id"]])


def test_a_leading_system_message_overrides_for_that_call_only(api: Api, received: list[Any]) -> None:
    created = chat(api, provider(api))
    complete(
        api, created["id"], [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"}]
    )
    assert received[-1] == [("system", "Answer in French."), ("user", "Hi")]
    assert api.call("chats_get", path={"chat_id": created["id"]}).body == created  # unchanged


def test_per_chat_stream_is_openai_chunks_and_done(api: Api) -> None:
    created = chat(api, provider(api))
    reply = complete(api, created["id"], [{"role": "user", "content": "a b"}], stream=True)
    events = [line[6:] for line in reply.body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1])
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "a b"


def test_documents_store_list_get_with_content_and_delete(api: Api) -> None:
    created = api.call(
        "documents_create", {"name": "policy.md", "media_type": "text/markdown", "content": "Refunds within 30 days."}
    )
    assert created.status == 201
    document = created.body
    assert document["id"].startswith("doc_")
    assert (document["size_bytes"], "content" in document) == (23, False)
    got = api.call("documents_get", path={"document_id": document["id"]}, query={"include": "content"}).body
    assert got["content"] == "Refunds within 30 days."
    assert [d["id"] for d in api.call("documents_list").body["data"]] == [document["id"]]
    assert api.call("documents_get", path={"document_id": document["id"]}, principal=STRANGER).status == 404
    assert api.call("documents_delete", path={"document_id": document["id"]}).body["deleted"] is True
    assert api.call("documents_get", path={"document_id": document["id"]}).status == 404


def test_oversize_documents_get_413(api: Api) -> None:
    from parley.settings import Settings, set_settings

    set_settings(Settings(max_body_bytes=4 * MAX_DOCUMENT_BYTES))
    reply = api.call("documents_create", {"name": "big", "content": "x" * (MAX_DOCUMENT_BYTES + 1)})
    assert reply.status == 413
    assert reply.body["error"]["code"] == "document_too_large"


def test_document_id_messages_in_both_completion_routes(api: Api, received: list[Any]) -> None:
    document = api.call("documents_create", {"name": "faq", "content": "Our refund window is 30 days."}).body
    created = chat(api, provider(api))
    reply = complete(api, created["id"], [{"role": "user", "document_id": document["id"]}])
    assert reply.body["choices"][0]["message"]["content"] == "Our refund window is 30 days."
    stateless = api.call(
        "completions_create",
        {
            "model": "echo",
            "messages": [{"role": "system", "document_id": document["id"]}, {"role": "user", "content": "window?"}],
        },
    )
    assert stateless.status == 200
    assert received[-1][0] == ("system", "Our refund window is 30 days.")


@pytest.mark.parametrize(
    ("message", "status", "param"),
    [
        ({"role": "user", "document_id": "doc_01JZ00000000000000000000AA"}, 400, "messages[0].document_id"),
        ({"role": "user", "document_id": "doc_x", "content": "both"}, 400, "messages[0]"),
    ],
)
def test_bad_document_references(api: Api, message: dict[str, Any], status: int, param: str) -> None:
    reply = api.call("completions_create", {"model": "echo", "messages": [message]})
    assert reply.status == status
    assert reply.body["error"]["param"] == param


def test_a_foreign_document_is_a_400_naming_it(api: Api) -> None:
    theirs = api.call("documents_create", {"name": "secret", "content": "theirs"}, principal=STRANGER).body
    reply = api.call(
        "completions_create", {"model": "echo", "messages": [{"role": "user", "document_id": theirs["id"]}]}
    )
    assert (reply.status, reply.body["error"]["code"]) == (400, "document_not_found")
    assert theirs["id"] in reply.body["error"]["message"]


def test_conversation_attachments_reach_the_model_and_are_recorded(api: Api, received: list[Any]) -> None:
    document = api.call("documents_create", {"name": "invoice.txt", "content": "Invoice 4711: 2 charges."}).body
    cid = api.call("conversations_create", {}).body["id"]
    reply = api.call(
        "messages_create", {"content": "Why twice?", "attachments": [document["id"]]}, path={"conversation_id": cid}
    )
    assert reply.status == 200
    assert received[-1][-1] == ("user", "Why twice?\n\n[Attachment: invoice.txt]\nInvoice 4711: 2 charges.")
    user = api.call("messages_list", path={"conversation_id": cid}, query={"order": "asc"}).body["data"][0]
    assert (user["content"], user["attachments"]) == ("Why twice?", [document["id"]])
    missing = api.call(
        "messages_create",
        {"content": "x", "attachments": ["doc_01JZ00000000000000000000AA"]},
        path={"conversation_id": cid},
    )
    assert missing.body["error"]["param"] == "attachments[0]"
