"""PATCH /v1/api-keys/{key_id}: a key's name and limits."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import PROJECT_ID_PATTERN, ApiKey, ApiKeyUpdate
from parley.services import keys

app = make_app()


@app.patch("/v1/api-keys/<key_id>")
@requires("api_keys:UpdateApiKey")
def update_api_key(
    key_id: str, body: ApiKeyUpdate, project_id: Annotated[str | None, Query(pattern=PROJECT_ID_PATTERN)] = None
) -> ApiKey:
    return keys.update_key(principal(app), key_id, body, project_id)


lambda_handler = build_handler(app)
