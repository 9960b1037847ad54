"""Concurrent sends through the local server (issue [correctness]): no hang, no 5xx, seqs dense,
usage sums exact. Two bursts of 100 here; bench/local_sends.py runs 20 of them."""

from __future__ import annotations

import pytest

from tests.local.bursts import burst, check, conversations_for
from tests.local.conftest import start_server, stop_server

pytestmark = pytest.mark.local


def test_bursts_of_100_concurrent_sends_store_every_pair_densely_and_meter_exactly() -> None:
    server = start_server()
    try:
        conversations = conversations_for(server, 10)
        for round_no in range(2):
            outcome = burst(server, conversations, 100, round_no)
            assert outcome.hung == 0
            assert outcome.statuses == {200: 100}, outcome.statuses
        check(server, conversations, expected_sends=200)
    finally:
        stop_server(server)
