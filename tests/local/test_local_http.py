"""Real HTTP against the local server: auth, errors, streaming that is really streamed, the openai SDK."""

from __future__ import annotations

import itertools
import json
import signal
import time

import httpx
import openai
import pytest

from tests.local.conftest import Server, start_server

pytestmark = pytest.mark.local


def post(server: Server, body: bytes | str, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not False:
        headers["Authorization"] = f"Bearer {key or server.key}"
    return httpx.post(f"{server.url}/v1/chat/completions", content=body, headers=headers, timeout=30)


def test_health_answers_without_a_key_soon_after_start(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert server.started_in < 60


def test_openai_sdk_creates_a_completion(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Hello from the SDK"}]
    )
    assert completion.choices[0].message.content == "Hello from the SDK"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 4


def test_openai_sdk_streams_a_completion_with_usage(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "stream these words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stream these words"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_sdk_raises_its_typed_errors(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=[])
    assert bad.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert unknown_model.value.code == "model_not_found"
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="prl_not_a_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_streaming_is_real_chunks_arrive_200ms_apart(server: Server) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "a b c d e"}]}
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, line[6:]))
    words = [t for t, data in arrivals if data != "[DONE]" and json.loads(data)["choices"][0]["delta"].get("content")]
    assert len(words) == 5
    gaps = [b - a for a, b in itertools.pairwise(words)]
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert words[-1] - words[0] >= 0.75  # spread over the stream, not delivered at the end
    assert arrivals[-1][1] == "[DONE]"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_request"),
        (b'{"model": "echo"}', 400, "invalid_request"),
        (b'{"model": "echo", "messages": []}', 400, "invalid_request"),
        (b'{"model": "echo", "messages": [{"role": "oracle", "content": "x"}]}', 400, "invalid_request"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "top_p": "all"}', 400, "invalid_request"),
        (b'{"model": "mystery", "messages": [{"role": "user", "content": "x"}]}', 404, "model_not_found"),
        (b"x" * (2 * 1024 * 1024), 413, "request_too_large"),
        (b"x" * (11 * 1024 * 1024), 413, "request_too_large"),
    ],
)
def test_bad_input_is_a_4xx_in_the_error_model(server: Server, body: bytes, status: int, code: str) -> None:
    response = post(server, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"type", "code", "message", "param", "request_id"}
    assert error["request_id"]


def test_missing_or_unknown_key_is_401_and_unknown_route_404(server: Server) -> None:
    assert post(server, b"{}", key=False).status_code == 401  # type: ignore[arg-type]
    unknown = post(server, b"{}", key="prl_nobody")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"
    missing = httpx.get(f"{server.url}/v1/nowhere", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_server_cleanly(stop: signal.Signals) -> None:
    own = start_server()
    own.process.send_signal(stop)
    out = own.wait_exit(timeout=15)
    assert own.process.returncode == 0
    assert "Traceback" not in out
    assert "parley: stopped" in out
