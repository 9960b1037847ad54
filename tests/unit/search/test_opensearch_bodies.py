"""The OpenSearch adapter's requests, pinned to OpenSearch's documented DSL (bool/term/terms,
match, match_phrase, knn with an efficient filter, highlight, from/size, sort/search_after, _bulk,
_msearch, create index), the tenant filter in every query, error mapping, and SigV4 for aoss."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.domain.errors import SearchUnavailable
from parley.search.base import ChunkDoc, ChunkQuery, MessageDoc, MessageQuery
from parley.search.opensearch import OpenSearchEngine, build_client, chunk_mapping
from tests.unit.search.conftest import DIM
from tests.unit.search.fake_opensearch import FakeOpenSearch

P = "proj_a"
TENANT = {"term": {"project_id": P}}


def filters_of(body: Any) -> list[Any]:
    if "knn" in body["query"]:
        return body["query"]["knn"]["vector"]["filter"]["bool"]["filter"]
    return body["query"]["bool"]["filter"]


def test_ensure_indexes_creates_the_pinned_mappings(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    opensearch.ensure_indexes()
    opensearch.ensure_indexes()  # already there: HEAD only
    puts = [(m, p, b) for m, p, b in fake.log if m == "PUT"]
    assert [p for _, p, _ in puts] == ["/t-chunks", "/t-messages"]
    assert puts[0][2] == chunk_mapping(DIM)
    vector = puts[0][2]["mappings"]["properties"]["vector"]
    assert vector == {
        "type": "knn_vector",
        "dimension": DIM,
        "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"},
    }
    assert puts[0][2]["settings"] == {"index": {"knn": True}}
    assert puts[1][2]["mappings"]["properties"]["created_at"] == {"type": "date"}
    assert [m for m, _, _ in fake.log].count("HEAD") == 4


def test_put_chunks_scans_then_one_bulk_without_custom_ids(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    doc = ChunkDoc(P, "idx", "doc", "doc#0", 0, "text", 0, 4, [3.0, 0, 4.0, 0], "H", {"lang": "en"})
    opensearch.put_chunks(P, "idx", "doc", [doc])
    opensearch.put_chunks(P, "idx", "doc", [doc])
    scans = [b for m, p, b in fake.log if p == "/t-chunks/_search"]
    assert scans[0] == {
        "size": 1000,
        "_source": False,
        "query": {
            "bool": {
                "filter": [TENANT, {"term": {"index_id": "idx"}}, {"term": {"document_id": "doc"}}],
            }
        },
        "sort": [{"entry_id": "asc"}],
    }
    first, second = fake.bodies("/_bulk")
    assert first[0] == {"index": {"_index": "t-chunks"}}
    source = first[1]
    assert source["vector"] == [0.6, 0.0, 0.8, 0.0]  # normalised: inner product == cosine
    assert source["metadata_pairs"] == ['lang="en"'] and source["metadata"] == {"lang": "en"}
    assert set(source) == {
        "entry_id", "project_id", "index_id", "document_id", "chunk_id", "ordinal", "text", "start", "end",
        "heading", "metadata", "metadata_pairs", "vector",
    }  # fmt: skip
    ((verb, meta),) = second[0].items()
    assert verb == "delete" and set(meta) == {"_index", "_id"}  # the server-assigned id of the old entry
    assert second[1:] == [{"index": {"_index": "t-chunks"}}, second[2]]


def test_hybrid_query_is_one_msearch_with_the_tenant_filter(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    opensearch.ensure_indexes()
    opensearch.query_chunks(ChunkQuery(P, "idx", "Refund policy?", [0, 2.0, 0, 0], top_k=5, filter={"tier": 1}))
    (lines,) = fake.bodies("/_msearch")
    assert lines[0] == {"index": "t-chunks"} and lines[2] == {"index": "t-chunks"}
    filters = [TENANT, {"term": {"index_id": "idx"}}, {"term": {"metadata_pairs": "tier=1"}}]
    source = ["document_id", "chunk_id", "ordinal", "text", "start", "end", "heading", "metadata"]
    assert lines[1] == {
        "size": 50,
        "_source": source,
        "query": {"bool": {"must": [{"match": {"text": {"query": "refund policy"}}}], "filter": filters}},
    }
    assert lines[3] == {
        "size": 50,
        "_source": source,
        "query": {
            "knn": {"vector": {"vector": [0.0, 1.0, 0.0, 0.0], "k": 50, "filter": {"bool": {"filter": filters}}}}
        },
    }


def test_message_search_body(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    opensearch.put_messages([MessageDoc(P, "c", "m", "user", "hello there", "2026-01-01T00:00:00Z", "u")])
    opensearch.search_messages(MessageQuery(P, 'say "hello"', user_id="u", conversation_id="c", limit=10, offset=20))
    body = fake.bodies("/t-messages/_search")[-1]
    assert body == {
        "from": 20,
        "size": 11,
        "_source": ["conversation_id", "message_id", "role", "created_at", "user_id"],
        "query": {
            "bool": {
                "must": [{"match": {"content": {"query": 'say "hello"'}}}],
                "should": [{"match_phrase": {"content": {"query": 'say "hello"', "boost": 4.0}}}],
                "filter": [TENANT, {"term": {"user_id": "u"}}, {"term": {"conversation_id": "c"}}],
            }
        },
        "sort": [{"_score": "desc"}, {"created_at": "desc"}, {"entry_id": "asc"}],
        "highlight": {
            "encoder": "html",
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "fields": {"content": {"fragment_size": 150, "number_of_fragments": 1}},
        },
    }
    upsert_scan = fake.bodies("/t-messages/_search")[0]
    assert filters_of(upsert_scan) == [TENANT, {"term": {"conversation_id": "c"}}, {"terms": {"message_id": ["m"]}}]


def test_every_query_filters_on_the_project(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    doc = ChunkDoc(P, "idx", "doc", "doc#0", 0, "text", 0, 4, [1.0, 0, 0, 0])
    opensearch.put_chunks(P, "idx", "doc", [doc])
    opensearch.query_chunks(ChunkQuery(P, "idx", "text", [1.0, 0, 0, 0]))
    opensearch.delete_document(P, "idx", "doc")
    opensearch.delete_index(P, "idx")
    opensearch.put_messages([MessageDoc(P, "c", "m", "user", "x", "2026-01-01T00:00:00Z")])
    opensearch.search_messages(MessageQuery(P, "x"))
    opensearch.delete_messages(P, "c", ["m"])
    opensearch.delete_conversation(P, "c")
    queries = [b for _, p, b in fake.log if p.endswith("/_search")]
    queries += [line for lines in fake.bodies("/_msearch") for line in lines[1::2]]
    assert len(queries) >= 9
    for body in queries:
        assert filters_of(body)[0] == TENANT


def test_transport_failures_are_search_unavailable(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    opensearch.ensure_indexes()
    for status in (429, 500, 503, 403):
        fake.fail_next = status
        with pytest.raises(SearchUnavailable):
            opensearch.search_messages(MessageQuery(P, "x"))
    dead = OpenSearchEngine("http://127.0.0.1:9", "us-east-1", dimension=DIM, client=build_unreachable())
    with pytest.raises(SearchUnavailable):
        dead.query_chunks(ChunkQuery(P, "idx", "x", [1.0, 0, 0, 0]))


def test_a_400_is_our_bug_and_propagates(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    from opensearchpy.exceptions import RequestError

    opensearch.ensure_indexes()
    fake.fail_next = 400
    with pytest.raises(RequestError):
        opensearch.search_messages(MessageQuery(P, "x"))


def test_wrong_dimension_is_refused_before_any_request(fake: FakeOpenSearch, opensearch: OpenSearchEngine) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        opensearch.put_chunks(P, "i", "d", [ChunkDoc(P, "i", "d", "d#0", 0, "t", 0, 1, [1.0, 2.0])])
    assert fake.log == []


def build_unreachable() -> Any:
    from opensearchpy import OpenSearch, RequestsHttpConnection

    return OpenSearch(hosts=[{"host": "127.0.0.1", "port": 9}], connection_class=RequestsHttpConnection, max_retries=0)


def test_requests_are_signed_for_aoss() -> None:
    """build_client signs with SigV4 for the `aoss` service (static fake credentials, no network:
    the prepared request is signed and inspected, never sent)."""
    import requests
    from botocore.credentials import Credentials

    client = build_client(
        "https://abc123.us-east-1.aoss.amazonaws.com", "us-east-1", credentials=Credentials("AKIDEXAMPLE", "secret")
    )
    connection = client.transport.get_connection()
    assert connection.host == "https://abc123.us-east-1.aoss.amazonaws.com:443"
    request = requests.Request("POST", f"{connection.host}/t-chunks/_search", data=json.dumps({"size": 1})).prepare()
    signed = connection.session.auth(request)
    authorization = signed.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/aoss/aws4_request" in authorization
    assert "x-amz-content-sha256" in {h.lower() for h in signed.headers}
