"""PATCH /v1/projects/{project_id}: rename a project, set its rate limits and budgets."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.keys import Project, ProjectUpdate
from parley.services import keys

app = make_app()


@app.patch("/v1/projects/<project_id>")
@requires("projects:UpdateProject")
def update_project(project_id: str, body: ProjectUpdate) -> Project:
    return keys.update_project(principal(app), project_id, body)


lambda_handler = build_handler(app)
