"""Bursts of concurrent sends through a local server, checked exactly (tests/local and
bench/local_sends.py): every response 200, each conversation's seqs dense with every reply right
after its own user message, and the usage report equal to the sum of the replies' usage."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.local.conftest import Server

WAIT_S = 120  # no send may take longer: past it, the burst counts as hung


@dataclass
class Burst:
    statuses: dict[int, int] = field(default_factory=dict)
    hung: int = 0
    replies: int = 0


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=WAIT_S)


def burst(server: Server, conversations: list[str], sends: int, round_no: int) -> Burst:
    """`sends` sends at once, spread over `conversations`, each with its own Idempotency-Key."""
    outcome, lock = Burst(), threading.Lock()
    start = threading.Barrier(min(sends, 50))

    def one(n: int) -> None:
        if n < 50:
            start.wait()
        cid = conversations[n % len(conversations)]
        try:
            with client(server) as c:
                answer = c.post(
                    f"/v1/conversations/{cid}/messages",
                    json={"content": f"round {round_no} send {n}"},
                    headers={"Idempotency-Key": f"r{round_no}-s{n}"},
                )
            status = answer.status_code
        except httpx.TimeoutException:
            with lock:
                outcome.hung += 1
            return
        with lock:
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1

    with ThreadPoolExecutor(min(sends, 100)) as pool:
        list(pool.map(one, range(sends)))
    return outcome


def check(server: Server, conversations: list[str], expected_sends: int) -> tuple[int, int, int]:
    """Seqs dense and paired in every conversation; returns (replies, prompt tokens, completion tokens)."""
    replies = prompt = completion = 0
    with client(server) as c:
        for cid in conversations:
            seen: list[dict[str, object]] = []
            cursor = None
            while True:
                query = {"order": "asc", "limit": "100", **({"cursor": cursor} if cursor else {})}
                page = c.get(f"/v1/conversations/{cid}/messages", params=query).json()
                seen += page["data"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert [m["seq"] for m in seen] == list(range(1, len(seen) + 1)), f"{cid}: seqs not dense"
            for user, reply in zip(seen[::2], seen[1::2], strict=True):
                assert (user["role"], reply["role"]) == ("user", "assistant"), f"{cid}: {user['seq']} unpaired"
                assert reply["content"] == user["content"], f"{cid}: reply {reply['seq']} not after its message"
                assert reply["status"] == "completed", f"{cid}: reply {reply['seq']} is {reply['status']}"
                usage = reply["usage"]
                assert isinstance(usage, dict)
                replies += 1
                prompt += int(usage["prompt_tokens"])
                completion += int(usage["completion_tokens"])
        totals = c.get("/v1/usage", params={"group_by": "model"}).json()["totals"]
    assert replies == expected_sends
    counted = (totals["requests"], totals["prompt_tokens"], totals["completion_tokens"])
    expected = (replies, prompt, completion)
    assert counted == expected, f"usage report {counted} != replies {expected}"
    return replies, prompt, completion


def conversations_for(server: Server, count: int) -> list[str]:
    with client(server) as c:
        return [c.post("/v1/conversations", json={"title": f"burst {i}"}).json()["id"] for i in range(count)]
