"""GET /v1/projects/{project_id}: a project of the caller's organization, with its limits."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import keys

app = make_app()


@app.get("/v1/projects/<project_id>")
@requires("projects:GetProject")
def get_project(project_id: str) -> Response[str]:
    return Response(200, "application/json", keys.get_project(principal(app), project_id).model_dump_json())


lambda_handler = build_handler(app)
