"""GET /v1/health: liveness, no API key."""

from typing import Literal

from pydantic import BaseModel

from parley import __version__
from parley.api.app import build_handler, make_app, public

app = make_app()


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


@app.get("/v1/health")
@public
def health() -> Health:
    return Health(version=__version__)


lambda_handler = build_handler(app)
