"""A fake OpenSearch on 127.0.0.1 for the adapter's tests and the bench: test scaffolding, small
on purpose. It implements only what parley.search.opensearch sends (HEAD/PUT an index, `_bulk`,
`<index>/_search`, `_msearch`) and only the query DSL shapes the adapter pins; any other body
answers 400, so a drift in the adapter's requests fails the tests instead of being half-understood.
Scores: a plain BM25 (k1 1.2, b 0.75) over lowercase word tokens, a phrase check for
`match_phrase`, cosine for `knn`. Every request is logged (method, path, parsed body)."""

from __future__ import annotations

import html
import json
import math
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = re.compile(r"\w+")


class BadRequest(Exception):
    pass


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise BadRequest(what)


def keys(value: Any, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    expect(isinstance(value, dict), f"expected an object, got {value!r}")
    present = set(value)
    expect(required <= present <= required | optional, f"keys {sorted(present)}, expected {sorted(required)}")
    return value  # type: ignore[no-any-return]


class FakeOpenSearch:
    def __init__(self) -> None:
        self.indexes: dict[str, dict[str, Any]] = {}  # name -> {"mapping": ..., "docs": {id: source}}
        self.log: list[tuple[str, str, Any]] = []
        self.fail_next: int | None = None  # answer the next request with this status
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                fake.handle(self, "HEAD")

            def do_PUT(self) -> None:
                fake.handle(self, "PUT")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

            def do_GET(self) -> None:
                fake.handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> FakeOpenSearch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path_suffix: str) -> list[Any]:
        return [body for _, path, body in self.log if path.endswith(path_suffix)]

    # http --------------------------------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if length else ""
        try:
            with self.lock:
                if self.fail_next is not None:
                    status, self.fail_next = self.fail_next, None
                    answer: tuple[int, Any] = (status, {"error": {"type": "injected"}, "status": status})
                else:
                    answer = self.route(method, path, raw)
        except BadRequest as exc:
            answer = (400, {"error": {"type": "parsing_exception", "reason": str(exc)}, "status": 400})
        status, body = answer
        data = b"" if method == "HEAD" else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def route(self, method: str, path: str, raw: str) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["_bulk"]:
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
            self.log.append((method, path, lines))
            return 200, self.bulk(lines)
        if method == "POST" and parts == ["_msearch"]:
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
            self.log.append((method, path, lines))
            expect(len(lines) % 2 == 0, "msearch wants header/body pairs")
            responses = []
            for header, body in zip(lines[::2], lines[1::2], strict=True):
                keys(header, {"index"})
                status, result = self.search(header["index"], body)
                responses.append({**result, "status": status})
            return 200, {"responses": responses}
        body = json.loads(raw) if raw else None
        self.log.append((method, path, body))
        if len(parts) == 1 and method == "HEAD":
            return (200 if parts[0] in self.indexes else 404), {}
        if len(parts) == 1 and method == "PUT":
            if parts[0] in self.indexes:
                return 400, {"error": {"type": "resource_already_exists_exception"}, "status": 400}
            self.check_mapping(body)
            self.indexes[parts[0]] = {"mapping": body, "docs": {}}
            return 200, {"acknowledged": True, "index": parts[0]}
        if len(parts) == 2 and parts[1] == "_search" and method in ("POST", "GET"):
            return self.search(parts[0], body)
        raise BadRequest(f"unsupported {method} {path}")

    # requests ----------------------------------------------------------------------------------
    @staticmethod
    def check_mapping(body: Any) -> None:
        keys(body, {"mappings"}, frozenset({"settings"}))
        props = keys(body["mappings"], {"properties"})["properties"]
        for field in props.values():
            expect(field.get("type") in {"keyword", "text", "integer", "date", "object", "knn_vector"}, "field type")
            if field["type"] == "knn_vector":
                keys(field, {"type", "dimension", "method"})
                keys(field["method"], {"name", "engine", "space_type"})

    def bulk(self, lines: list[Any]) -> dict[str, Any]:
        items, i = [], 0
        while i < len(lines):
            action = lines[i]
            expect(isinstance(action, dict) and len(action) == 1, "bulk action line")
            ((verb, meta),) = action.items()
            if verb == "delete":
                keys(meta, {"_index", "_id"})
                docs = self.indexes[meta["_index"]]["docs"]
                found = docs.pop(meta["_id"], None) is not None
                items.append({"delete": {"_id": meta["_id"], "status": 200 if found else 404}})
                i += 1
            elif verb == "index":
                keys(meta, {"_index"})  # AOSS vector collections: no custom _id
                expect(meta["_index"] in self.indexes, "bulk into a missing index")
                source = lines[i + 1]
                expect(isinstance(source, dict), "bulk source")
                new_id = uuid.uuid4().hex
                self.indexes[meta["_index"]]["docs"][new_id] = source
                items.append({"index": {"_id": new_id, "status": 201}})
                i += 2
            else:
                raise BadRequest(f"bulk verb {verb}")
        return {"took": 1, "errors": False, "items": items}

    def search(self, index: str, body: Any) -> tuple[int, Any]:
        if index not in self.indexes:
            return 404, {"error": {"type": "index_not_found_exception", "index": index}, "status": 404}
        docs = self.indexes[index]["docs"]
        query = keys(body, {"size", "_source", "query"}, frozenset({"sort", "search_after", "from", "highlight"}))
        q = query["query"]
        if "knn" in q:
            return 200, self.knn(docs, query)
        bool_ = keys(keys(q, {"bool"})["bool"], {"filter"}, frozenset({"must", "should"}))
        selected = {i: d for i, d in docs.items() if self.passes(d, bool_["filter"])}
        if "must" not in bool_:  # an id scan
            expect(set(query) <= {"size", "_source", "query", "sort", "search_after"}, "scan keys")
            expect(query["_source"] is False and query["sort"] == [{"entry_id": "asc"}], "scan shape")
            ordered = sorted(selected.items(), key=lambda kv: kv[1]["entry_id"])
            if "search_after" in query:
                ordered = [kv for kv in ordered if kv[1]["entry_id"] > query["search_after"][0]]
            page = ordered[: query["size"]]
            return 200, {"hits": {"hits": [{"_id": i, "_score": None, "sort": [d["entry_id"]]} for i, d in page]}}
        ((match,),) = [bool_["must"]]
        ((field, spec),) = keys(match, {"match"})["match"].items()
        keys(spec, {"query"})
        scored = self.bm25(selected, docs, field, spec["query"])
        if "should" in bool_:
            ((phrase,),) = [bool_["should"]]
            ((pfield, pspec),) = keys(phrase, {"match_phrase"})["match_phrase"].items()
            keys(pspec, {"query", "boost"})
            wanted = tokens(pspec["query"])
            for i in scored:
                if _has_phrase(tokens(selected[i][pfield]), wanted):
                    scored[i] += pspec["boost"] * len(wanted)
        hits = sorted(scored.items(), key=lambda kv: -kv[1])
        if "sort" in query:
            expect(query["sort"] == [{"_score": "desc"}, {"created_at": "desc"}, {"entry_id": "asc"}], "sort")
            hits.sort(key=lambda kv: docs[kv[0]]["entry_id"])
            hits.sort(key=lambda kv: docs[kv[0]]["created_at"], reverse=True)
            hits.sort(key=lambda kv: -kv[1])
        start = query.get("from", 0)
        page = hits[start : start + query["size"]]
        out = []
        for i, score in page:
            hit: dict[str, Any] = {"_id": i, "_score": score, "_source": _pick(docs[i], query["_source"])}
            if "highlight" in query:
                hit["highlight"] = {field: [self.highlight(docs[i][field], spec["query"], query["highlight"])]}
            out.append(hit)
        return 200, {"hits": {"hits": out}}

    def knn(self, docs: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        expect(set(query) == {"size", "_source", "query"}, "knn keys")
        ((field, spec),) = keys(query["query"], {"knn"})["knn"].items()
        keys(spec, {"vector", "k", "filter"})
        filters = keys(keys(spec["filter"], {"bool"})["bool"], {"filter"})["filter"]
        vector = spec["vector"]
        scored = []
        for i, d in docs.items():
            if self.passes(d, filters):
                cos = _cosine(vector, d[field])
                scored.append((i, (1 + cos) / 2))
        scored.sort(key=lambda kv: -kv[1])
        page = scored[: min(spec["k"], query["size"])]
        hits = [{"_id": i, "_score": s, "_source": _pick(docs[i], query["_source"])} for i, s in page]
        return {"hits": {"hits": hits}}

    @staticmethod
    def passes(doc: dict[str, Any], filters: Any) -> bool:
        expect(isinstance(filters, list) and filters, "filter must be a non-empty list")
        expect(filters[0] == {"term": {"project_id": filters[0].get("term", {}).get("project_id")}}, "tenant first")
        for clause in filters:
            expect(isinstance(clause, dict) and len(clause) == 1, "filter clause")
            ((kind, spec),) = clause.items()
            expect(kind in ("term", "terms") and isinstance(spec, dict) and len(spec) == 1, f"filter {kind}")
            ((field, value),) = spec.items()
            have = doc.get(field)
            have_set = set(have) if isinstance(have, list) else {have}
            wanted = set(value) if kind == "terms" else {value}
            expect(all(isinstance(v, str) for v in wanted), "term values are strings")
            if not have_set & wanted:
                return False
        return True

    @staticmethod
    def bm25(selected: dict[str, Any], docs: dict[str, Any], field: str, text: str) -> dict[str, float]:
        terms = set(tokens(text))
        corpus = {i: tokens(d.get(field) or "") for i, d in docs.items()}
        avg = sum(len(t) for t in corpus.values()) / max(len(corpus), 1)
        df = Counter(term for t in corpus.values() for term in set(t))
        scores = {}
        for i in selected:
            counts = Counter(corpus[i])
            score = 0.0
            for term in terms & set(counts):
                idf = math.log(1 + (len(corpus) - df[term] + 0.5) / (df[term] + 0.5))
                tf = counts[term]
                score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(corpus[i]) / max(avg, 1)))
            if score > 0:
                scores[i] = score
        return scores

    @staticmethod
    def highlight(content: str, text: str, spec: Any) -> str:
        keys(spec, {"encoder", "pre_tags", "post_tags", "fields"})
        expect(spec["encoder"] == "html", "encoder")
        ((_, field_spec),) = spec["fields"].items()
        keys(field_spec, {"fragment_size", "number_of_fragments"})
        wanted, out, last = set(tokens(text)), [], 0
        for m in TOKEN.finditer(content):
            if m.group().lower() in wanted:
                out.append(html.escape(content[last : m.start()]))
                out.append(f"{spec['pre_tags'][0]}{html.escape(m.group())}{spec['post_tags'][0]}")
                last = m.end()
        out.append(html.escape(content[last:]))
        return "".join(out)


def _has_phrase(have: list[str], wanted: list[str]) -> bool:
    n = len(wanted)
    return n > 0 and any(have[i : i + n] == wanted for i in range(len(have) - n + 1))


def _pick(source: dict[str, Any], fields: Any) -> dict[str, Any]:
    expect(isinstance(fields, list), "_source is a list of fields")
    return {f: source[f] for f in fields if f in source}


def _cosine(a: list[float], b: list[float]) -> float:
    expect(len(a) == len(b), "vector dimension")
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def client_for(fake: FakeOpenSearch) -> Any:
    """An opensearch-py client aimed at the fake (plain HTTP, no signing, no retries)."""
    from opensearchpy import OpenSearch, RequestsHttpConnection

    return OpenSearch(
        hosts=[{"host": "127.0.0.1", "port": fake.port}],
        use_ssl=False,
        connection_class=RequestsHttpConnection,
        max_retries=0,
        timeout=5,
    )
