"""PATCH /v1/providers/{provider_id}: change fields; `api_key` replaces the stored key."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.providers import AIProvider, ProviderUpdate
from parley.services import providers

app = make_app()


@app.patch("/v1/providers/<provider_id>")
@requires("providers:UpdateProvider")
def update_provider(provider_id: str, body: ProviderUpdate) -> AIProvider:
    return providers.update(principal(app), provider_id, body)


lambda_handler = build_handler(app)
