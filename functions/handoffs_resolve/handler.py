"""POST /v1/conversations/{conversation_id}/handoff/resolve: the conversation is active again."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.handoffs import Handoff, HandoffResolve
from parley.services import conversations, handoffs

app = make_app()


@app.post("/v1/conversations/<conversation_id>/handoff/resolve")
@requires("conversations:ResolveHandoff")
def resolve_handoff(
    conversation_id: str, body: HandoffResolve, org_id: Annotated[str | None, Query()] = None
) -> Handoff:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    return handoffs.resolve(caller, conversation_id, body)


lambda_handler = build_handler(app)
