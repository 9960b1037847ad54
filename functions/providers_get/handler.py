"""GET /v1/providers/{provider_id}"""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.providers import AIProvider
from parley.services import providers

app = make_app()


@app.get("/v1/providers/<provider_id>")
@requires("providers:GetProvider")
def get_provider(provider_id: str) -> AIProvider:
    return providers.get(principal(app), provider_id)


lambda_handler = build_handler(app)
