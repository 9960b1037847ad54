"""POST /v1/conversations/{conversation_id}/context: hidden context the model sees and users do not."""

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict, Field

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import MAX_PROMPT_BYTES, utf8_at_most
from parley.services import context, messages

app = make_app()


class HiddenContext(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    content: Annotated[str, Field(min_length=1), utf8_at_most(MAX_PROMPT_BYTES)]
    role: Literal["system"] = "system"


@app.post("/v1/conversations/<conversation_id>/context")
@requires("conversations:InjectContext")
def inject_context(conversation_id: str, body: HiddenContext) -> Response[str]:
    caller = principal(app)
    model, _ = messages.model_for(caller, conversation_id)
    item: dict[str, Any] = context.inject(caller, conversation_id, body.content, model)
    shown = {
        "id": item["id"],
        "object": "hidden_context",
        "conversation_id": conversation_id,
        "role": "system",
        "content": item["content"],
        "tokens": item["tokens"],
        "created_at": item["created_at"],
    }
    return Response(201, "application/json", json.dumps(shown))


lambda_handler = build_handler(app)
