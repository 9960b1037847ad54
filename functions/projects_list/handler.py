"""GET /v1/projects: the organization's projects, cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.keys import Project
from parley.services import keys

app = make_app()


@app.get("/v1/projects")
@requires("projects:ListProjects")
def list_projects(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Project]:
    data, after = keys.list_projects(principal(app), limit, position(cursor, keys.PROJECT_PAGES))
    return page(data, after, keys.PROJECT_PAGES)


lambda_handler = build_handler(app)
