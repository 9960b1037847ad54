"""`parley chats`: stored completion configurations (seed 003) and their completions.

parley chats create --ai-provider-id aip_... [--name N] [--system-message S] [--model M]
parley chats list [--limit N] [--cursor C] [--all]
parley chats get <chat_id>
parley chats delete <chat_id>
parley chats complete <chat_id> --message TEXT [--system TEXT] [--document-id doc_...] [--no-stream]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from parley.cli.client import ApiError, JsonObject, TransportError, parse_event, path
from parley.cli.commands import Commands, Context, positive_int

CHAT_FIELDS = ("id", "name", "ai_provider_id", "model", "system_message", "project_id", "created_at", "updated_at")
LIST_COLUMNS = ("id", "name", "ai_provider_id", "model", "created_at")


def register(commands: Commands) -> None:
    group = commands.group(
        "chats",
        help="stored chat configurations and their completions",
        description=(
            "Chats store an AI provider, a default system message and a model; complete a chat\n"
            "by id and send only the messages."
        ),
    )

    create = group.command("create", create_chat, help="create a chat")
    create.add_argument("--ai-provider-id", required=True, metavar="ID", help="the AI provider (aip_...)")
    create.add_argument("--name", help="a human-readable name")
    create.add_argument("--system-message", metavar="TEXT", help="the default system prompt of every completion")
    create.add_argument("--model", help="the model (default: the provider's default_model)")

    list_ = group.command("list", list_chats, help="list chats, newest first")
    list_.add_argument("--limit", type=positive_int, metavar="N", help="chats per page (the API's default if unset)")
    list_.add_argument("--cursor", metavar="CURSOR", help="start at this page (a next_cursor of an earlier page)")
    list_.add_argument("--all", action="store_true", help="follow next_cursor through every page")

    get = group.command("get", get_chat, help="show a chat")
    get.add_argument("chat_id", help="the chat (cht_...)")

    delete = group.command("delete", delete_chat, help="delete a chat")
    delete.add_argument("chat_id", help="the chat (cht_...)")

    complete = group.command(
        "complete",
        complete_chat,
        help="run a completion with a chat's provider, model and system message",
        description=(
            "Run a completion with a chat's provider, model and system message.\n\n"
            "Messages are sent in the order given. --system replaces the chat's stored system\n"
            "message for this call only. The reply is streamed unless --no-stream."
        ),
    )
    complete.add_argument("chat_id", help="the chat (cht_...)")
    complete.add_argument(
        "--message",
        action=_AppendMessage,
        dest="messages",
        metavar="TEXT",
        help="a user message (repeatable)",
    )
    complete.add_argument(
        "--document-id",
        action=_AppendMessage,
        dest="messages",
        metavar="ID",
        help="a user message whose text is a stored document (doc_..., repeatable)",
    )
    complete.add_argument("--system", metavar="TEXT", help="a system message for this call (overrides the chat's)")
    complete.add_argument("--no-stream", dest="stream", action="store_false", help="wait for the whole reply")
    complete.add_argument("--temperature", type=float, metavar="F", help="sampling temperature (0-2)")
    complete.add_argument("--max-tokens", type=positive_int, metavar="N", help="the most tokens to generate")


class _AppendMessage(argparse.Action):
    """--message and --document-id append to one list, so the messages keep the command line's order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        messages: list[JsonObject] = list(getattr(namespace, self.dest, None) or [])
        key = "document_id" if option_string == "--document-id" else "content"
        messages.append({"role": "user", key: values})
        setattr(namespace, self.dest, messages)


def _chat_path(chat_id: str, *rest: str) -> str:
    return path("v1", "chats", chat_id, *rest)


def _show_chat(ctx: Context, chat: JsonObject) -> None:
    ctx.out.fields({name: value for name, value in chat.items() if name != "object"}, CHAT_FIELDS)


def create_chat(args: argparse.Namespace, ctx: Context) -> int:
    body: JsonObject = {"ai_provider_id": args.ai_provider_id}
    for field in ("name", "system_message", "model"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    chat = ctx.client.request("POST", "/v1/chats", json_body=body)
    if ctx.out.json_mode:
        ctx.out.json(chat)
    else:
        ctx.out.line(f"Created chat {chat.get('id')}")
        _show_chat(ctx, chat)
    return 0


def _page(ctx: Context, limit: int | None, cursor: str | None) -> JsonObject:
    params: dict[str, str | int] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    page = ctx.client.request("GET", "/v1/chats", params=params)
    if not isinstance(page.get("data"), list):
        raise TransportError("the API's list has no data array")
    return page


def list_chats(args: argparse.Namespace, ctx: Context) -> int:
    page = _page(ctx, args.limit, args.cursor)
    if args.all:
        chats: list[Any] = list(page["data"])
        seen: set[str] = set()
        while page.get("has_more"):
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen:
                raise TransportError("the API said has_more but gave no new next_cursor")
            seen.add(cursor)
            page = _page(ctx, args.limit, cursor)
            chats.extend(page["data"])
        page = {"object": "list", "data": chats, "has_more": False, "next_cursor": None}
    if ctx.out.json_mode:
        ctx.out.json(page)
        return 0
    rows = [chat for chat in page["data"] if isinstance(chat, dict)]
    if rows:
        ctx.out.table(rows, LIST_COLUMNS)
    else:
        ctx.out.note("no chats")
    if page.get("has_more") and page.get("next_cursor"):
        ctx.out.note(f"more chats: --cursor {page['next_cursor']} (or --all)")
    return 0


def get_chat(args: argparse.Namespace, ctx: Context) -> int:
    chat = ctx.client.request("GET", _chat_path(args.chat_id))
    if ctx.out.json_mode:
        ctx.out.json(chat)
    else:
        _show_chat(ctx, chat)
    return 0


def delete_chat(args: argparse.Namespace, ctx: Context) -> int:
    result = ctx.client.request("DELETE", _chat_path(args.chat_id))
    if ctx.out.json_mode:
        ctx.out.json(result)
    else:
        ctx.out.line(f"Deleted chat {result.get('id', args.chat_id)}")
    return 0


def completion_body(args: argparse.Namespace) -> JsonObject:
    messages: list[JsonObject] = []
    if args.system is not None:
        messages.append({"role": "system", "content": args.system})
    messages.extend(args.messages or [])
    body: JsonObject = {"messages": messages, "stream": args.stream}
    if args.temperature is not None:
        body["temperature"] = args.temperature
    if args.max_tokens is not None:
        body["max_tokens"] = args.max_tokens
    return body


def _first_choice(document: JsonObject) -> JsonObject:
    choices = document.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def complete_chat(args: argparse.Namespace, ctx: Context) -> int:
    if not args.messages:
        ctx.out.error("give at least one --message or --document-id")
        return 2
    body = completion_body(args)
    url = _chat_path(args.chat_id, "completions")
    if not args.stream:
        completion = ctx.client.request("POST", url, json_body=body)
        if ctx.out.json_mode:
            ctx.out.json(completion)
        else:
            message = _first_choice(completion).get("message")
            content = message.get("content") if isinstance(message, dict) else None
            ctx.out.line(content if isinstance(content, str) else "")
        return 0
    return _stream_completion(ctx, url, body)


def _stream_completion(ctx: Context, url: str, body: JsonObject) -> int:
    parts: list[str] = []
    finish_reason: object = None
    done = False
    failure: ApiError | TransportError | None = None
    with ctx.client.stream("POST", url, json_body=body) as events:
        try:
            for event in events:
                chunk = parse_event(event)
                if chunk is None:
                    done = True
                    break
                choice = _first_choice(chunk)
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    parts.append(content)
                    if not ctx.out.json_mode:
                        ctx.out.delta(content)
                finish_reason = choice.get("finish_reason") or finish_reason
        except (ApiError, TransportError) as exc:
            failure = exc
    if not ctx.out.json_mode and (parts or failure is None):
        ctx.out.line()
    if failure is None and not done:
        failure = TransportError("the stream ended before [DONE]; the reply may be incomplete")
    if failure is not None:
        raise failure
    if ctx.out.json_mode:
        ctx.out.json({"content": "".join(parts), "finish_reason": finish_reason})
    return 0
