"""POST /v1/conversations/{conversation_id}/context: hidden context the model sees and users do not."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import MAX_PROMPT_BYTES, HiddenContextItem, utf8_at_most
from parley.services import context, messages

app = make_app()


class HiddenContextCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    content: Annotated[str, Field(min_length=1), utf8_at_most(MAX_PROMPT_BYTES)]
    role: Literal["system"] = "system"


@app.post("/v1/conversations/<conversation_id>/context", status_code=201)
@requires("conversations:InjectContext")
def inject_context(conversation_id: str, body: HiddenContextCreate) -> HiddenContextItem:
    caller = principal(app)
    model, _ = messages.model_for(caller, conversation_id)
    return context.inject(caller, conversation_id, body.content, model)


lambda_handler = build_handler(app)
