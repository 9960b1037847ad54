"""The API Gateway REQUEST authorizer: API key -> principal {org, project, key, permissions}."""

from typing import Any

from parley.api.authorizer import authorize


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    del context
    return authorize(event)
