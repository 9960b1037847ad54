"""Write events/schemas/<type>.json (the JSON Schema of each event of parley.domain.events) and
events/examples/<type>.json (an example of each, validated by its model on the way out).

    .venv/bin/python events/make_event_docs.py          # write both
    .venv/bin/python events/make_event_docs.py --check  # exit 1 when a file is missing or stale

`make test` runs the check (tests/unit/test_event_catalogue.py), so the files never drift from
the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from parley.domain.events import CATALOGUE, Envelope

ROOT = Path(__file__).resolve().parent
SCHEMAS, EXAMPLES = ROOT / "schemas", ROOT / "examples"
CONVERSATION = "conv_01JZ0000000000000000000001"
ENVELOPE: dict[str, Any] = {
    "created_at": "2026-12-03T10:15:30.123Z",
    "project_id": "proj_01JZ0000000000000000000002",
    "org_id": "org_acme",
    "conversation_id": CONVERSATION,
}
CONVERSATION_DATA: dict[str, Any] = {
    "conversation_id": CONVERSATION,
    "title": "Help with billing",
    "user_id": "user_123",
    "status": "active",
    "model": "gpt-4o-mini",
    "provider_id": "aip_01JZ0000000000000000000003",
    "metadata": {"page": "/billing"},
    "message_count": 0,
    "created_at": "2026-12-03T10:15:30.123Z",
    "updated_at": "2026-12-03T10:15:30.123Z",
}
REPLY: dict[str, Any] = {
    "conversation_id": CONVERSATION,
    "message_id": "msg_01JZ0000000000000000000005",
    "user_message_id": "msg_01JZ0000000000000000000004",
    "seq": 2,
    "user_id": "user_123",
    "model": "gpt-4o-mini",
    "provider_id": "aip_01JZ0000000000000000000003",
    "content": "You were charged twice because the first payment was retried; the duplicate is refunded.",
    "token_count": 182,
    "usage": {"prompt_tokens": 160, "completion_tokens": 22, "total_tokens": 182},
    "cost_usd": "0.0000372",
    "completed_at": "2026-12-03T10:15:32.480Z",
}
HANDOFF: dict[str, Any] = {
    "conversation_id": CONVERSATION,
    "handoff_id": "hof_01JZ0000000000000000000010",
    "user_id": "user_123",
    "target": "human",
    "reason": "Refund over $500",
    "metadata": {"queue": "billing"},
    "requested_at": "2026-12-03T10:20:11.004Z",
}
DATA: dict[str, tuple[int | None, dict[str, Any]]] = {  # type -> (sequence, data)
    "chat.conversation_created": (1, CONVERSATION_DATA),
    "chat.conversation_updated": (
        8,
        {**CONVERSATION_DATA, "title": "Double charge", "message_count": 4, "changed": ["title"]},
    ),
    "chat.conversation_archived": (9, {**CONVERSATION_DATA, "status": "archived", "message_count": 4}),
    "chat.conversation_unarchived": (10, {**CONVERSATION_DATA, "message_count": 4}),
    "chat.conversation_deleted": (
        11,
        {"conversation_id": CONVERSATION, "user_id": "user_123", "message_count": 4},
    ),
    "chat.message_sent": (
        2,
        {
            "conversation_id": CONVERSATION,
            "message_id": "msg_01JZ0000000000000000000004",
            "seq": 1,
            "user_id": "user_123",
            "content": "Why was I charged twice this month?",
            "tokens": 9,
            "created_at": "2026-12-03T10:15:31.002Z",
        },
    ),
    "chat.response_completed": (3, REPLY),
    "chat.message_failed": (
        5,
        {
            **REPLY,
            "message_id": "msg_01JZ0000000000000000000007",
            "seq": 4,
            "content": "",
            "token_count": 0,
            "usage": None,
            "cost_usd": None,
            "status": "error",
            "error": {"type": "api_error", "code": "provider_error", "message": "The provider answered 502."},
        },
    ),
    "chat.context_summarized": (
        6,
        {
            "conversation_id": CONVERSATION,
            "summary_id": "msg_01JZ0000000000000000000008",
            "version": 1,
            "covers_from": 1,
            "covers_to": 24,
            "message_count": 24,
            "tokens": 212,
            "model": "gpt-4o-mini",
        },
    ),
    "chat.handoff_requested": (7, HANDOFF),
    "chat.handoff_resolved": (
        8,
        {
            **HANDOFF,
            "metadata": {"queue": "billing", "ticket": "T-1042"},
            "resolved_at": "2026-12-03T10:42:05.310Z",
            "resolution": "Refund approved",
            "resolved_by": {"type": "human", "id": "op_7", "name": "Dana"},
        },
    ),
    "webhook.test": (None, {"webhook_id": "whk_01JZ0000000000000000000009"}),
    "webhook.endpoint_disabled": (
        None,
        {
            "webhook_id": "whk_01JZ0000000000000000000009",
            "url": "https://hooks.example.com/parley",
            "reason": "every delivery failed for 5 days",
            "failing_since": "2026-11-28T10:00:00.000Z",
        },
    ),
}


def example(model: type[Envelope]) -> dict[str, Any]:
    kind = str(model.model_fields["type"].default)
    sequence, data = DATA[kind]
    number = CATALOGUE.index(model) + 10
    envelope = {**ENVELOPE, "sequence": sequence}
    if not kind.startswith("chat."):
        envelope["conversation_id"] = None
    body = {"id": f"evt_01JZ00000000000000000000{number}", "type": kind, **envelope, "data": data}
    return json.loads(model.model_validate(body).model_dump_json())


def documents() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for model in CATALOGUE:
        kind = str(model.model_fields["type"].default)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"parley:event:{kind}"}
        schema |= model.model_json_schema()
        files[SCHEMAS / f"{kind}.json"] = json.dumps(schema, indent=2) + "\n"
        files[EXAMPLES / f"{kind}.json"] = json.dumps(example(model), indent=2) + "\n"
    return files


def main(argv: list[str]) -> int:
    files = documents()
    if "--check" in argv:
        stale = [
            str(p.relative_to(ROOT.parent)) for p, text in files.items() if not p.exists() or p.read_text() != text
        ]
        known = {p.name for p in files}
        extra = [str(p) for d in (SCHEMAS, EXAMPLES) if d.exists() for p in d.glob("*.json") if p.name not in known]
        for name in stale + extra:
            print(f"events: {name} is out of date; run `.venv/bin/python events/make_event_docs.py`", file=sys.stderr)
        return 1 if stale or extra else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"events: wrote {len(files)} files under {ROOT.relative_to(ROOT.parent)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
