"""The scheduled sweep: what a request cannot finish itself, folded in later.

- Usage records parked on the metering queue (DynamoDB refused them at call time) are added
  to the counters, each exactly once.
- Replies left `pending` by an invocation that died (timed out, crashed) are written back as
  `incomplete`/interrupted once they are older than any invocation can run, so history,
  counts and events agree even for conversations nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from parley.domain.clock import iso
from parley.services.metering import fold_parked
from parley.storage.conversations import STALE_PENDING, ConversationStore
from parley.storage.queues import MeteringQueue
from parley.storage.usage import UsageRepository


@dataclass(frozen=True)
class Swept:
    folded: int
    interrupted: int


def sweep(
    now: datetime | None = None,
    conversations: ConversationStore | None = None,
    usage: UsageRepository | None = None,
    queue: MeteringQueue | None = None,
) -> Swept:
    now = now or datetime.now(UTC)
    folded = fold_parked(usage, queue)
    store = conversations or ConversationStore()
    interrupted = 0
    for pk, seq, created_at in store.stale_pending(iso(now - STALE_PENDING)):
        project_id, conversation_id = pk.split("#", 1)
        interrupted += store.interrupt_stale(project_id, conversation_id, seq, created_at, now)
    return Swept(folded, interrupted)
