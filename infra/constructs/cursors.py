"""The cursor-signing key: one generated secret per stage, which list routes read to sign and
check their pagination cursors (parley.api.cursors).

Its name is derived from the stage (and kept outside the provider secrets' `parley/<stage>/`
prefix, which the provider functions may write), so the api stack can name it and grant reading
it without a cross-stack reference. Deleting the stage deletes the key (losing it only voids
outstanding cursors); Secrets Manager keeps a deleted name for its recovery window, so a stage
redeployed within it needs `aws secretsmanager delete-secret --force-delete-without-recovery` first.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.function import ParleyFunction, acknowledge

CURSORS = "cursors"  # route resource: reads the cursor-signing key


def cursor_secret_name(stage: str) -> str:
    return f"parley-internal/{stage}/cursor-key"


class ParleyCursorKey(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=cursor_secret_name(stage),
            description="Parley: HMAC key that signs pagination cursors (generated; never leaves AWS)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "Cursors are short-lived page positions; replacing the value only invalidates outstanding cursors "
            "(clients restart the listing), so it is rotated by redeploying rather than by a rotation Lambda.",
        )


def grant_cursor_key(function: ParleyFunction, stage: str) -> None:
    """Read access to the stage's cursor key (Secrets Manager appends six characters to the name)."""
    arn = Stack.of(function).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{cursor_secret_name(stage)}-??????",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    iam.Grant.add_to_principal(
        grantee=function.function, actions=["secretsmanager:GetSecretValue"], resource_arns=[arn]
    )
