"""GET /v1/health: liveness, no API key."""

from parley import __version__
from parley.api.app import build_handler, make_app, public

app = make_app()


@app.get("/v1/health")
@public
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


lambda_handler = build_handler(app)
