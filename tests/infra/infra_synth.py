"""Synthesizes the CDK app into files the infra tests read: the stack templates and CDK's
validation report (where cdk-nag's findings go). Offline: the core layer is built from the
repository; the dependency layer is an empty directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.application import build_app, cdk_json_context
from infra.layers import build_core_layer


@dataclass(frozen=True)
class Synth:
    outdir: Path
    stage: str
    templates: dict[str, dict[str, Any]]  # stack name -> CloudFormation template
    report: dict[str, Any]  # validation-report.json
    plugins: list[str]  # the validation plugins the app registered

    @property
    def data(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-data"]

    @property
    def search(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-search"]

    @property
    def functions(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-functions"]

    @property
    def api(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-api"]

    @property
    def events(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-events"]

    @property
    def observability(self) -> dict[str, Any]:
        return self.templates[f"parley-{self.stage}-observability"]

    @classmethod
    def load(cls, outdir: Path) -> Synth:
        templates = {
            p.name.removesuffix(".template.json"): json.loads(p.read_text())
            for p in sorted(outdir.glob("*.template.json"))
        }
        report = json.loads((outdir / "validation-report.json").read_text())
        app = json.loads((outdir / "parley-test.json").read_text())
        return cls(outdir=outdir, stage=app["stage"], templates=templates, report=report, plugins=app["plugins"])


def synthesize(root: Path, context: dict[str, Any] | None = None) -> Path:
    """The app synthesized into root/cdk.out, with cdk.json's context and `context` over it."""
    layers = root / "layers"
    build_core_layer(layers / "core")
    (layers / "deps" / "python").mkdir(parents=True, exist_ok=True)
    context = (
        cdk_json_context()
        | (context or {})
        | {
            "layers_dir": str(layers),
            # What the CDK CLI turns on: each resource names its construct path (the tests look
            # resources up by path).
            "aws:cdk:enable-path-metadata": True,
            # Unacknowledged cdk-nag errors would abort the synth; let them reach the report instead,
            # where the cdk-nag test lists them.
            "@aws-cdk/core:failSynthOnValidationErrors": False,
        }
    )
    outdir = root / "cdk.out"
    parley = build_app(App(context=context, outdir=str(outdir)))
    parley.app.synth()
    # Stage.policy_validation_beta1 is deprecated, but the Python binding has no other way to list
    # what Validations.of(app).add_plugins registered.
    plugins = [plugin.name for plugin in parley.app.policy_validation_beta1]
    (outdir / "parley-test.json").write_text(json.dumps({"stage": parley.stage, "plugins": plugins}))
    return outdir
