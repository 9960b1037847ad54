"""PATCH /v1/projects/{project_id}: rename a project, set its rate limits and budgets."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import ProjectUpdate
from parley.services import keys

app = make_app()


@app.patch("/v1/projects/<project_id>")
@requires("projects:UpdateProject")
def update_project(project_id: str, body: ProjectUpdate) -> Response[str]:
    updated = keys.update_project(principal(app), project_id, body)
    return Response(200, "application/json", updated.model_dump_json())


lambda_handler = build_handler(app)
