"""GET /v1/conversations/{conversation_id}/context: the context window's state."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.context import ContextState
from parley.services import context, messages

app = make_app()


@app.get("/v1/conversations/<conversation_id>/context")
@requires("conversations:GetContext")
def get_context(conversation_id: str) -> ContextState:
    caller = principal(app)
    model, runner = messages.model_for(caller, conversation_id)
    return context.state(caller, conversation_id, model, runner)


lambda_handler = build_handler(app)
