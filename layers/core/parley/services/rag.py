"""Retrieval-augmented generation: a knowledge index's best chunks for the latest user message,
put in the model's context before the call.

Retrieval runs when an index is named (`index_id` on the request, or the chat's, conversation's
or agent's index) unless `use_rag` is false; `use_rag: true` without any index is a 400. The
retrieved chunks become one system message, placed after the leading system messages, in this
template (documented in the README):

    Answer with the help of the numbered knowledge excerpts below where they are relevant, and
    cite the ones you use by number, like [1]. If they do not contain the answer, say so
    instead of guessing.

    [1] <document id> (<heading>)
    <chunk text>

The reply carries the same chunks as citations (document, chunk, score, span).
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.domain.chat import ChatMessage
from parley.domain.errors import InvalidRequest
from parley.domain.indexes import Citation, RagOptions
from parley.domain.principal import Principal
from parley.services import indexes

INSTRUCTIONS = (
    "Answer with the help of the numbered knowledge excerpts below where they are relevant, and cite the ones "
    "you use by number, like [1]. If they do not contain the answer, say so instead of guessing."
)


def latest_user_text(messages: Sequence[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            text = message.text().strip()
            return text or None
    return None


def retrieve(
    principal: Principal,
    *,
    use_rag: bool | None,
    index_id: str | None,
    options: RagOptions | None,
    messages: Sequence[ChatMessage],
    param: str = "index_id",
) -> tuple[Citation, ...]:
    """The citations for this call: none when retrieval is off or there is nothing to ask."""
    if use_rag is False or (index_id is None and not use_rag):
        return ()
    if index_id is None:
        raise InvalidRequest(
            "use_rag needs a knowledge index: give index_id (or attach one to the chat, conversation or agent).",
            code="index_required",
            param=param,
        )
    query = latest_user_text(messages)
    if query is None:
        return ()
    return tuple(indexes.retrieve(principal, index_id, query, options or RagOptions(), param=param))


def excerpt_block(citations: Sequence[Citation]) -> str:
    parts = [INSTRUCTIONS]
    for number, citation in enumerate(citations, start=1):
        where = f" ({citation.heading})" if citation.heading else ""
        parts.append(f"[{number}] {citation.document_id}{where}\n{citation.text}")
    return "\n\n".join(parts)


def grounded(messages: Sequence[ChatMessage], citations: Sequence[Citation]) -> list[ChatMessage]:
    """The messages with the excerpts as a system message after the leading system messages."""
    result = list(messages)
    if not citations:
        return result
    at = 0
    while at < len(result) and result[at].role in ("system", "developer"):
        at += 1
    result.insert(at, ChatMessage(role="system", content=excerpt_block(citations)))
    return result
