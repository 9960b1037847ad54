"""The route table: every route of Parley's API, the one list that drives CDK (functions,
integrations, permissions to tables) and the local server (routing, auth).

Each route names the directory under functions/ whose handler.py serves it; a test checks
that every handler registers exactly the routes the table gives it, with the same permission.
"""

from pathlib import Path

from parley.api.routing import Route, RouteTable

ROUTES = (
    Route("GET", "/v1/health", "health_get", None, description="Liveness; needs no API key."),
    Route(
        "POST",
        "/v1/chat/completions",
        "completions_create",
        "completions:CreateChatCompletion",
        streaming=True,
        resources=("keys", "usage"),
        timeout_seconds=900,
        description="OpenAI-compatible chat completion, streamed as SSE with stream=true.",
    ),
)

TABLE = RouteTable(routes=ROUTES, authorizer="authorizer", root=Path(__file__).resolve().parent)
