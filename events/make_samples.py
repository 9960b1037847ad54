"""Write events/api/<function>.json, one sample API Gateway proxy event per route of the table.

    .venv/bin/python events/make_samples.py        # adds samples for new routes, keeps existing ones
    .venv/bin/python events/make_samples.py --all  # rewrites all

The samples look like what API Gateway sends a function behind Parley's authorizer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from parley.api.routing import load_route_table
from parley.runtime.events import proxy_event

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ID = "01JZ00000000000000000000AA"
BODIES: dict[str, Any] = {
    "completions_create": {"model": "echo", "messages": [{"role": "user", "content": "Hello, Parley!"}]},
    "embeddings_create": {"model": "local", "input": ["Refunds within 30 days.", "How do I get a refund?"]},
    "providers_create": {
        "type": "openai",
        "name": "openai-main",
        "api_key": "sk-sample-not-real",
        "default_model": "gpt-4o-mini",
    },
    "providers_update": {"default_model": "gpt-4.1-mini"},
    "responses_create": {"model": "echo", "input": "Hello, Parley!"},
    "conversations_create": {"title": "Help with billing", "user_id": "user_123", "metadata": {"page": "/billing"}},
    "conversations_update": {"title": "Billing double charge issue"},
    "messages_create": {"content": "Why was I charged twice this month?"},
    "sessions_create": {"model": "echo"},
    "chats_create": {
        "ai_provider_id": f"aip_{SAMPLE_ID}",
        "name": "Support Assistant",
        "system_message": "You are a helpful support assistant.",
    },
    "chats_update": {"name": "Billing Assistant"},
    "chats_complete": {"messages": [{"role": "user", "content": "Hello!"}]},
    "documents_create": {
        "name": "refund-policy.md",
        "media_type": "text/markdown",
        "content": "Refunds within 30 days.",
    },
    "projects_create": {"name": "Support", "limits": {"requests_per_minute": 600, "monthly_budget_usd": 500}},
    "projects_update": {"limits": {"requests_per_minute": 1200}},
    "api_keys_create": {"name": "ci", "permissions": ["conversations:*"], "limits": {"requests_per_minute": 60}},
    "api_keys_update": {"name": "ci-narrow"},
    "webhooks_create": {"url": "https://example.com/parley-events", "event_types": ["chat.*"]},
    "webhooks_update": {"event_types": ["chat.response_completed"], "description": "Replies only"},
    "agents_create": {
        "name": "support_agent",
        "model": "echo",
        "system_prompt": "You are Acme's support agent.",
        "tools": [
            {
                "type": "client",
                "name": "lookup_order",
                "description": "Find an order by its number",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            }
        ],
    },
    "agents_update": {"system_prompt": "You are Acme's billing agent."},
    "context_inject": {"content": "User is on the Enterprise plan. Account created 2024-01-15."},
    "threads_create": {"parent_message_id": f"msg_{SAMPLE_ID}", "title": "About the refund"},
    "handoffs_create": {"to": "human", "reason": "Refund over $500", "metadata": {"queue": "billing"}},
    "handoffs_resolve": {"resolution": "Refund approved", "resolved_by": {"id": "op_7", "name": "Dana"}},
    "indexes_create": {"name": "help-center", "embedding_model": "local"},
    "indexes_update": {"description": "The public help center"},
    "index_documents_create": {
        "id": "refund-policy",
        "text": "# Refunds\n\nRefunds are possible within 30 days of purchase.",
        "media_type": "text/markdown",
        "metadata": {"lang": "en"},
    },
    "index_query": {"query": "What is our refund policy?", "top_k": 3},
}
PATH_VALUES = {
    "provider_id": f"aip_{SAMPLE_ID}",
    "conversation_id": f"conv_{SAMPLE_ID}",
    "chat_id": f"cht_{SAMPLE_ID}",
    "document_id": f"doc_{SAMPLE_ID}",
    "project_id": f"proj_{SAMPLE_ID}",
    "key_id": f"key_{SAMPLE_ID}",
    "webhook_id": f"whk_{SAMPLE_ID}",
    "delivery_id": f"dlv_{SAMPLE_ID}",
    "agent_id": f"agt_{SAMPLE_ID}",
    "index_id": f"idx_{SAMPLE_ID}",
    "model_id": "openai-main%2Fgpt-4o-mini",
    "response_id": f"resp_{SAMPLE_ID}",
}
AUTHORIZER = {
    "principalId": "key_01JZ0000000000000000000000",
    "org_id": "org_sample",
    "project_id": "proj_sample",
    "key_id": "key_01JZ0000000000000000000000",
    "permissions": '["*"]',
}


def sample(route: Any) -> dict[str, Any]:
    params = {name: PATH_VALUES[name] for name in route.params}
    path = route.path.format(**params)
    body = BODIES.get(route.function)
    headers = {
        "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
        "User-Agent": ["curl/8.5.0"],
        "X-Forwarded-For": ["203.0.113.7"],
        "X-Forwarded-Proto": ["https"],
    }
    if body is not None:
        headers["Content-Type"] = ["application/json"]
    if route.permission:
        headers["Authorization"] = ["Bearer prl_sample_not_a_real_key"]
    event = proxy_event(
        route.method,
        path,
        route.path,
        path_parameters=params or None,
        headers=headers,
        body=json.dumps(body).encode() if body is not None else None,
        authorizer=AUTHORIZER if route.permission else None,
        request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        source_ip="203.0.113.7",
    )
    context = event["requestContext"]
    context.update(
        apiId="abc123",
        domainName="abc123.execute-api.us-east-1.amazonaws.com",
        accountId="123456789012",
        stage="prod",
        path="/prod" + path,
        requestTime="23/Nov/2026:18:00:00 +0000",
        requestTimeEpoch=1795456800000,
        extendedRequestId="Bd9XUFYvIAMEd3g=",
    )
    return event


def main(rewrite_all: bool) -> None:
    table = load_route_table(ROOT / "functions" / "routes.py")
    for route in table.routes:
        target = ROOT / "events" / "api" / f"{route.function}.json"
        if rewrite_all or not target.exists():
            target.write_text(json.dumps(sample(route), indent=2) + "\n")
            print("wrote", target.relative_to(ROOT))


if __name__ == "__main__":
    main("--all" in sys.argv)
