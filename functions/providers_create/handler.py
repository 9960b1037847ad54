"""POST /v1/providers: store an AI provider; its api_key goes to Secrets Manager."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.providers import AIProvider, ProviderCreate
from parley.services import providers

app = make_app()


@app.post("/v1/providers", status_code=201)
@requires("providers:CreateProvider")
def create_provider(body: ProviderCreate) -> AIProvider:
    return providers.create(principal(app), body)


lambda_handler = build_handler(app)
