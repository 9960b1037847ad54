"""POST /v1/providers: store an AI provider; its api_key goes to Secrets Manager."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.providers import ProviderCreate
from parley.services import providers

app = make_app()


@app.post("/v1/providers")
@requires("providers:CreateProvider")
def create_provider(body: ProviderCreate) -> Response[str]:
    created = providers.create(principal(app), body)
    return Response(201, "application/json", created.model_dump_json())


lambda_handler = build_handler(app)
