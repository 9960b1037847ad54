"""Document texts in S3: s3://{bucket}/{project}/{document id}, server-side encrypted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.aws import clients
from parley.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class BlobStore:
    def __init__(self, client: S3Client | None = None, bucket: str | None = None) -> None:
        self._client = client
        self._bucket = bucket

    @property
    def client(self) -> S3Client:
        return self._client or clients().s3

    @property
    def bucket(self) -> str:
        return self._bucket or get_settings().documents_bucket

    def put_text(self, key: str, text: str, media_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=text.encode(),
            ContentType=f"{media_type}; charset=utf-8",
            ServerSideEncryption="AES256",
        )

    def get_text(self, key: str) -> str:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)
