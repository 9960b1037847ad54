"""POST /v1/conversations/{conversation_id}/handoff: to a human (pending until resolved) or to an agent (at once)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.handoffs import Handoff, HandoffCreate
from parley.services import conversations, handoffs

app = make_app()


@app.post("/v1/conversations/<conversation_id>/handoff", status_code=201)
@requires("conversations:RequestHandoff")
def request_handoff(
    conversation_id: str, body: HandoffCreate, org_id: Annotated[str | None, Query()] = None
) -> Handoff:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    return handoffs.request(caller, conversation_id, body)


lambda_handler = build_handler(app)
