"""GET /v1/models/{model_id} (and under a chat's base URL): one model, in OpenAI's shape. A model id
with a slash (`<provider name>/<model>`) comes as one path segment, the slash as %2F, as OpenAI's
SDKs send it."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.models import Model
from parley.services import models

app = make_app()


@app.get("/v1/models/<model_id>")
@requires("models:GetModel")
def get_model(model_id: str) -> Model:
    return models.get_model(principal(app), model_id)


@app.get("/v1/chats/<chat_id>/models/<model_id>")
@requires("models:GetModel")
def get_chat_model(chat_id: str, model_id: str) -> Model:
    return models.get_chat_model(principal(app), chat_id, model_id)


@app.get("/openai/v1/models/<model_id>")  # OpenAI's base URL .../openai/v1
@requires("models:GetModel")
def openai_get_model(model_id: str) -> Model:
    return models.get_model(principal(app), model_id)


lambda_handler = build_handler(app)
