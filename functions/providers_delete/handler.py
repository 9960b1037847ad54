"""DELETE /v1/providers/{provider_id}: the record and its stored key."""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import providers

app = make_app()


@app.delete("/v1/providers/<provider_id>")
@requires("providers:DeleteProvider")
def delete_provider(provider_id: str) -> dict[str, Any]:
    providers.delete(principal(app), provider_id)
    return {"id": provider_id, "object": "ai_provider", "deleted": True}


lambda_handler = build_handler(app)
