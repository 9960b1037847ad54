"""POST /v1/conversations"""

import json
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import ConversationCreate
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations")
@requires("conversations:CreateConversation")
def create_conversation(body: ConversationCreate, org_id: Annotated[str | None, Query()] = None) -> Response[str]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    return Response(201, "application/json", json.dumps(conversations.create(caller, body).public()))


lambda_handler = build_handler(app)
