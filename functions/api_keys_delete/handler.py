"""DELETE /v1/api-keys/{key_id}: revoke a key (refused by the authorizer within its cache TTL)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.domain.keys import PROJECT_ID_PATTERN
from parley.services import keys

app = make_app()


@app.delete("/v1/api-keys/<key_id>")
@requires("api_keys:DeleteApiKey")
def delete_api_key(key_id: str, project_id: Annotated[str | None, Query(pattern=PROJECT_ID_PATTERN)] = None) -> Deleted:
    keys.delete_key(principal(app), key_id, project_id)
    return Deleted(id=key_id, object="api_key")


lambda_handler = build_handler(app)
