"""DELETE /v1/providers/{provider_id}: the record and its stored key."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import providers

app = make_app()


@app.delete("/v1/providers/<provider_id>")
@requires("providers:DeleteProvider")
def delete_provider(provider_id: str) -> Deleted:
    providers.delete(principal(app), provider_id)
    return Deleted(id=provider_id, object="ai_provider")


lambda_handler = build_handler(app)
