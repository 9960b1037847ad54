"""Streams ?chunks= lines, one every ?every= seconds."""

import time
from collections.abc import Iterator
from typing import Any

from parley.api.streaming import StreamingResponse


def lambda_handler(event: dict[str, Any], context: Any) -> StreamingResponse:
    query = event.get("queryStringParameters") or {}
    chunks, every = int(query.get("chunks", "3")), float(query.get("every", "0.1"))

    def body() -> Iterator[bytes]:
        for i in range(chunks):
            yield f"data: {i}\n\n".encode()
            time.sleep(every)

    return StreamingResponse(200, {"Content-Type": "text/event-stream"}, body())
