"""The ingest queue -> a knowledge index's document chunked, embedded and put in the search
engine (parley.services.indexes.ingest_message). A message whose storage write failed is
reported and comes back; the worker itself retries unavailable models and engines on a schedule
and then fails the document with the reason."""

from typing import Any

from parley.api.consumers import process_batch
from parley.services import indexes


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, indexes.ingest_message, what="Ingest")
