"""POST /v1/embeddings at the edge: OpenAI's request (strings or token ids) to the embeddings
service, and its vectors to OpenAI's `list` body, as float arrays or base64 (little-endian
float32, as OpenAI encodes them, which is what the openai SDK asks for by default and decodes)."""

from __future__ import annotations

import base64
import struct

from parley.domain.embeddings import Embedding, EmbeddingCreate, EmbeddingList, EmbeddingUsage
from parley.domain.errors import InvalidRequest, PayloadTooLarge
from parley.domain.principal import Principal
from parley.providers.tokenizer import TokenOutOfRange, decode
from parley.services import embeddings
from parley.services.completions import CallContext


def texts(request: EmbeddingCreate) -> list[str]:
    """The inputs as texts: token arrays decoded with the model's tiktoken encoding."""
    value = request.input
    if isinstance(value, str):
        return [value]
    if all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    arrays: list[list[int]] = [list(item) for item in value] if isinstance(value[0], list) else [list(value)]  # type: ignore[arg-type]
    decoded = []
    for i, ids in enumerate(arrays):
        try:
            decoded.append(decode(request.model, ids))
        except TokenOutOfRange as exc:
            where = f"input[{i}]" if len(arrays) > 1 else "input"
            raise InvalidRequest(f"{where}: {exc}.", code="invalid_token", param="input") from None
    return decoded


# A buffered Lambda response carries at most 6 MB (the payload limit); API Gateway's edge adds
# its own framing, so leave room.
MAX_RESPONSE_BYTES = 5_500_000


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def create(principal: Principal, request: EmbeddingCreate, context: CallContext) -> str:
    """The response body (JSON text), or 413 when it would be over what a buffered Lambda response
    can carry (the call was made and is metered: the caller asked for more than one response holds)."""
    body = build(principal, request, context).model_dump_json()
    if len(body) > MAX_RESPONSE_BYTES:
        raise PayloadTooLarge(
            f"The embeddings of these inputs take {len(body):,} bytes, over the {MAX_RESPONSE_BYTES:,} a response can"
            " carry; send fewer inputs per request, ask for encoding_format base64 (about a third of the size), or"
            " fewer dimensions.",
            code="response_too_large",
            param="input",
        )
    return body


def build(principal: Principal, request: EmbeddingCreate, context: CallContext) -> EmbeddingList:
    vectors, usage, model = embeddings.embed(
        principal,
        request.model,
        texts(request),
        input_type=request.input_type,
        dimensions=request.dimensions,
        provider_id=request.provider_id,
        user=request.user,
        context=context,
    )
    data = [
        Embedding(index=i, embedding=encode_base64(v) if request.encoding_format == "base64" else v)
        for i, v in enumerate(vectors)
    ]
    return EmbeddingList(
        data=data, model=model, usage=EmbeddingUsage(prompt_tokens=usage.prompt_tokens, total_tokens=usage.total_tokens)
    )
