"""GET /v1/providers/{provider_id}"""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import providers

app = make_app()


@app.get("/v1/providers/<provider_id>")
@requires("providers:GetProvider")
def get_provider(provider_id: str) -> dict[str, Any]:
    return providers.get(principal(app), provider_id).model_dump(mode="json")


lambda_handler = build_handler(app)
