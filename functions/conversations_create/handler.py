"""POST /v1/conversations"""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import Conversation, ConversationCreate
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations", status_code=201)
@requires("conversations:CreateConversation")
def create_conversation(body: ConversationCreate, org_id: Annotated[str | None, Query()] = None) -> Conversation:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    return conversations.create(caller, body)


lambda_handler = build_handler(app)
