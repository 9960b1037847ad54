"""The caller, as the Lambda authorizer established it (API key -> org, project, permissions).

A domain value: every layer takes it; the authorizer and `parley.api.app` turn it into and out of
API Gateway's authorizer context (`to_context` / `from_context`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley.domain.errors import AuthenticationFailed, PermissionDenied
from parley.domain.keys import Limits, ProjectLimits


@dataclass(frozen=True)
class Principal:
    org_id: str
    project_id: str
    key_id: str
    permissions: tuple[str, ...]
    expires_at: str | None = None  # RFC 3339 (Z); checked on every request, not only by the authorizer
    key_limits: Limits | None = None
    project_limits: ProjectLimits | None = None

    def allows(self, action: str) -> bool:
        """`<resource>:<Action>` is granted by itself, by `<resource>:*`, or by `*`."""
        resource = action.split(":", 1)[0]
        return any(p in ("*", action, f"{resource}:*") for p in self.permissions)

    def require(self, action: str) -> None:
        if not self.allows(action):
            raise PermissionDenied(f"This API key lacks the permission {action!r}.", code="permission_denied")

    def expired(self, now: str) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_context(self) -> dict[str, str]:
        """The authorizer's context map (API Gateway takes string, number and boolean values only)."""
        context = {
            "org_id": self.org_id,
            "project_id": self.project_id,
            "key_id": self.key_id,
            "permissions": json.dumps(list(self.permissions)),
        }
        if self.expires_at is not None:
            context["expires_at"] = self.expires_at
        limits = {
            scope: value.model_dump(exclude_none=True)
            for scope, value in (("key", self.key_limits), ("project", self.project_limits))
            if value is not None and not value.empty()
        }
        if limits:
            context["limits"] = json.dumps(limits)
        return context

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> Principal:
        if not context or "project_id" not in context:
            raise AuthenticationFailed("The request carries no authenticated principal.")
        try:
            permissions = json.loads(context.get("permissions") or "[]")
            limits = json.loads(context.get("limits") or "{}")
            key_limits = Limits(**limits["key"]) if "key" in limits else None
            project_limits = ProjectLimits(**limits["project"]) if "project" in limits else None
        except (TypeError, ValueError, KeyError) as exc:
            raise AuthenticationFailed("The authorizer context is malformed.") from exc
        expires_at = context.get("expires_at")
        return cls(
            org_id=str(context["org_id"]),
            project_id=str(context["project_id"]),
            key_id=str(context["key_id"]),
            permissions=tuple(str(p) for p in permissions),
            expires_at=str(expires_at) if expires_at else None,
            key_limits=key_limits,
            project_limits=project_limits,
        )
