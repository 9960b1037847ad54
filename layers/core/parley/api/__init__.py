"""API conventions: resolver factory, error model, principal, SSE, cursors, routes."""
