"""The documents bucket: document texts (s3://bucket/{project}/{document id}), private and encrypted.

Its name is derived from the stage, account and region, so the api stack can name it (and grant
access to its objects) without a cross-stack reference.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.function import ParleyFunction, acknowledge

DOCUMENTS = "documents"  # route resource: read and write document objects
DOCUMENTS_READ = "documents:read"  # route resource: read document objects (model calls)
READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")


# S3 bucket names stop at 63 characters. Account ids have 12 digits; the longest region names have
# 15 characters ("us-isof-south-1"); stages up to 20 (infra.application).
MAX_BUCKET_NAME = 63
ACCOUNT_ID_LENGTH = 12
LONGEST_REGION = 15


def documents_bucket_name(stage: str) -> str:
    """parley-<stage>-documents-<account>-<region>, which fits for stages up to 17 characters in
    every region; a longer stage gets "docs" instead of "documents" (so the name stays within 63
    characters), and shorter stages keep the name they always had."""
    for word in ("documents", "docs"):
        if len(f"parley-{stage}-{word}--") + ACCOUNT_ID_LENGTH + LONGEST_REGION <= MAX_BUCKET_NAME:
            return f"parley-{stage}-{word}-{Aws.ACCOUNT_ID}-{Aws.REGION}"
    raise ValueError(f"stage {stage!r} is too long for the documents bucket's name")


class ParleyDocuments(Construct):
    """`retain`: the bucket stays when the stack goes (production); otherwise the stack empties it
    (CDK's auto-delete custom resource) and deletes it, so a development stage tears down whole."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, retain: bool = True) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=documents_bucket_name(stage),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
            auto_delete_objects=not retain,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Objects are only written and read by Parley's own functions, whose calls CloudTrail data events "
            "can record where an operator wants them; a server access log bucket would be a second bucket to run.",
        )


def grant_documents(function: ParleyFunction, stage: str, *, write: bool) -> None:
    """Object access to the documents bucket (object keys are only known at run time)."""
    arn = f"arn:{Aws.PARTITION}:s3:::{documents_bucket_name(stage)}/*"
    actions = WRITE_ACTIONS if write else READ_ACTIONS
    iam.Grant.add_to_principal(grantee=function.function, actions=list(actions), resource_arns=[arn])
    nag_name = (
        documents_bucket_name(stage).replace(Aws.ACCOUNT_ID, "<AWS::AccountId>").replace(Aws.REGION, "<AWS::Region>")
    )
    acknowledge(
        function,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{nag_name}/*]",
        "Document objects are named {project}/{document id} at run time; the grant is to this stage's documents "
        f"bucket objects only, with {', '.join(actions)}.",
    )
