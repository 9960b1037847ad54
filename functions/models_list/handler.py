"""GET /v1/models (and GET /v1/chats/{chat_id}/models, for OpenAI clients given a chat's base URL):
the models this key can name, in OpenAI's shape."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.models import ModelList
from parley.services import models

app = make_app()


@app.get("/v1/models")
@requires("models:ListModels")
def list_models() -> ModelList:
    return models.list_models(principal(app))


@app.get("/v1/chats/<chat_id>/models")
@requires("models:ListModels")
def list_chat_models(chat_id: str) -> ModelList:
    return models.list_chat_models(principal(app), chat_id)


@app.get("/openai/v1/models")  # OpenAI's base URL .../openai/v1
@requires("models:ListModels")
def openai_list_models() -> ModelList:
    return models.list_models(principal(app))


lambda_handler = build_handler(app)
