"""GET /v1/api-keys/{key_id}: a key (never its secret)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import PROJECT_ID_PATTERN, ApiKey
from parley.services import keys

app = make_app()


@app.get("/v1/api-keys/<key_id>")
@requires("api_keys:GetApiKey")
def get_api_key(key_id: str, project_id: Annotated[str | None, Query(pattern=PROJECT_ID_PATTERN)] = None) -> ApiKey:
    return keys.get_key(principal(app), key_id, project_id)


lambda_handler = build_handler(app)
