"""Execution environments for the local server, as on Lambda: each invocation runs in an
environment of its own function, one invocation at a time per environment; a function has as
many environments as it has concurrent invocations, created on demand (a cold start: the
handler module is imported there) and reused warm afterwards.

An environment is a worker process. Powertools keeps per-process state (the resolver's
current event lives on a class shared by every app; Logger and Metrics are process-wide), so
only a process of its own per concurrent invocation keeps that state as safe as it is on
Lambda; threads would need a lock around every invocation, which is what made one slow model
call stall every other route. Workers come from a fork server that has already imported the
heavy libraries (boto3, Powertools, pydantic, httpx), so a cold start costs the handler's own
import and first use, not a fresh interpreter's; that fork server is single-threaded, so
forking it is safe. Workers reach AWS through one shared emulation endpoint (the server's
moto, by AWS_ENDPOINT_URL), never through state of their own.

Protocol on each environment's pipe (pickled tuples):
  parent -> child: ("invoke", event, request_id, timeout_s) | ("cancel",) | ("stop",)
  child -> parent: ("ready", init_ms) | ("init_error", text)
                   ("result", proxy_dict) | ("error", type, message)
                   ("head", status, headers, cookies), ("chunk", bytes)..., ("end", working)
                   and, when `working` (the response's `after` task runs, see parley.api.streaming),
                   ("idle",) once it is done: only then does the environment take another invocation
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.runtime import events

log = logging.getLogger("parley.local")

INIT_TIMEOUT_SECONDS = 60.0  # Lambda allows 10 s; a loaded laptop starting 20 at once needs more
OWN_WAIT_SECONDS = 5.0  # at the cap, how long a function waits for one of its own environments
LOCAL_READ_TIMEOUT = 60  # seconds botocore waits on the (serialised) local emulation before resending
# Imported once by the fork server; every environment starts with them in memory.
PRELOAD = ["parley.runtime.preload"]


@dataclass
class FakeLambdaContext:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{events.REGION}:{events.ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """The function raised (Lambda reports it as a function error); `str()` is its message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class InvocationTimeout(Exception):
    """The invocation outlived its deadline; its environment has been stopped."""


@dataclass
class Stream:
    """A streamed result arriving from an environment (the first chunk was produced there)."""

    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: Iterator[bytes]


@dataclass
class Invocation:
    result: Any  # an API Gateway proxy dict, or a StreamingResponse
    cold: bool
    init_ms: float = 0.0


# The child side


def _environment_main(conn: Any, function: str, handler_path: str, env: Mapping[str, str]) -> None:
    """The loop of one execution environment (runs in the worker process)."""
    # Ctrl-C reaches the whole process group; the server decides when environments stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    started = time.perf_counter()
    try:
        from parley.api.routing import load_module  # noqa: PLC0415
        from parley.aws import Clients, set_clients  # noqa: PLC0415
        from parley.runtime import preload  # noqa: PLC0415 - already in memory (the fork server's)

        set_clients(Clients(session=preload.SESSION, read_timeout=LOCAL_READ_TIMEOUT))

        module = load_module(Path(handler_path), f"parley_function_{function}")
        handler = module.lambda_handler
    except BaseException:  # noqa: BLE001 - reported to the server, which answers 502 and logs it
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if message[0] == "cancel":
            continue  # a cancel that crossed the stream's "end": nothing left to stop
        if message[0] != "invoke":
            return
        _, event, request_id, timeout_s = message
        try:
            _invoke(conn, handler, function, event, request_id, timeout_s)
        except (BrokenPipeError, EOFError, OSError):
            return


def _invoke(
    conn: Any, handler: Callable[..., Any], function: str, event: Any, request_id: str, timeout_s: float
) -> None:
    from parley.api.streaming import StreamingResponse, error_event, prime, run_after  # noqa: PLC0415

    context = FakeLambdaContext(function, request_id, deadline=time.monotonic() + timeout_s)
    try:
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - a function error, reported as Lambda reports it
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    if not isinstance(result, StreamingResponse):
        conn.send(("result", result))
        return
    primed = prime(result, request_id)
    conn.send(("head", primed.status, primed.headers, primed.cookies))
    try:
        for chunk in primed.body:
            if conn.poll():  # the client went away: stop producing (the generator's finally runs)
                conn.recv()
                break
            if chunk:
                conn.send(("chunk", chunk))
    except Exception as exc:  # noqa: BLE001 - a failure mid-stream ends the stream with an error event
        conn.send(("chunk", error_event(exc, request_id)))
    finally:
        close = getattr(primed.body, "close", None)
        if close is not None:
            close()
    # with work left for after the response (a background response), the server learns that the
    # response is complete ("end", True) and takes this environment back only at "idle", as Lambda
    # gives an environment no invocation before its runtime asks for the next
    conn.send(("end", primed.after is not None))
    if primed.after is not None:
        run_after(primed, request_id)
        conn.send(("idle",))


# The server side


class Environment:
    """One worker process serving one function."""

    def __init__(self, ctx: Any, function: str, handler_path: Path, env: Mapping[str, str]) -> None:
        parent, child = ctx.Pipe()
        self.function = function
        self.conn = parent
        self.process = ctx.Process(
            target=_environment_main,
            args=(child, function, str(handler_path), dict(env)),
            name=f"parley-env-{function}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.init_ms = 0.0
        self.invocations = 0
        self.last_used = time.monotonic()

    def wait_ready(self, timeout: float) -> None:
        message = self._receive(timeout)
        if message[0] == "init_error":
            self.kill()
            raise FunctionError("Runtime.ImportModuleError", f"{self.function} failed to initialise:\n{message[1]}")
        self.init_ms = float(message[1])

    def _receive(self, timeout: float) -> tuple[Any, ...]:
        try:
            if not self.conn.poll(max(0.0, timeout)):
                raise InvocationTimeout(f"{self.function}: no answer within {timeout:.1f} s")
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise FunctionError("Runtime.ExitError", f"{self.function}'s environment exited") from exc
        return message

    def invoke(self, event: dict[str, Any], request_id: str, timeout: float) -> tuple[str, tuple[Any, ...]]:
        """Send the event; return ("result", dict) or ("head", status, headers, cookies)."""
        self.invocations += 1
        try:
            self.conn.send(("invoke", event, request_id, timeout))
        except OSError as exc:
            raise FunctionError("Runtime.ExitError", f"{self.function}'s environment exited") from exc
        message = self._receive(timeout)
        if message[0] == "error":
            raise FunctionError(message[1], message[2])
        return message[0], message

    def chunks(self, deadline: float, on_done: Callable[[bool], None]) -> Iterator[bytes]:
        """The stream's chunks until "end"; `on_done(healthy)` hands the environment back.
        Closed early (the client left), it asks the function to stop and drains what is in flight."""
        healthy = False
        working = False  # the function still works after its response ("end", True): wait for "idle"
        try:
            while True:
                message = self._receive(deadline - time.monotonic())
                if message[0] == "end":
                    healthy, working = True, bool(message[1:] and message[1])
                    return
                yield message[1]
        except GeneratorExit:
            healthy = self._cancel(deadline)
            raise
        except InvocationTimeout:
            log.warning("%s: stream cut at its deadline (API Gateway allows a stream 15 minutes)", self.function)
        finally:
            if working:
                threading.Thread(
                    target=self._until_idle, args=(deadline, on_done), name=f"parley-after-{self.function}", daemon=True
                ).start()
            else:
                on_done(healthy)

    def _until_idle(self, deadline: float, on_done: Callable[[bool], None]) -> None:
        """Hand the environment back once its work after the response is done (killed at the
        invocation's deadline, as Lambda's timeout would)."""
        try:
            while self._receive(deadline - time.monotonic())[0] != "idle":
                pass
        except (FunctionError, InvocationTimeout):
            log.warning("%s: the work after a response did not finish by the deadline", self.function)
            on_done(False)
            return
        on_done(True)

    def _cancel(self, deadline: float) -> bool:
        try:
            self.conn.send(("cancel",))
            while (message := self._receive(min(deadline - time.monotonic(), 30.0)))[0] != "end":
                pass
            if message[1:] and message[1]:  # work after the response: the environment is free at "idle"
                while self._receive(deadline - time.monotonic())[0] != "idle":
                    pass
        except (FunctionError, InvocationTimeout, OSError):
            return False
        return True

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(("stop",))
        self.process.join(timeout=2)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class Environments:
    """Every function's environments: created on demand, reused warm (most recent first), at most
    `max_environments` in all; when that many exist, the least recently used idle one is retired
    to make room, else the invocation waits for one to free up (no request is refused)."""

    def __init__(
        self,
        handler_path: Callable[[str], Path],
        env: Mapping[str, str],
        *,
        max_environments: int = 128,
    ) -> None:
        self._handler_path = handler_path
        self._env = dict(env)
        self.max_environments = max_environments
        self._ctx: Any = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)
        # Start the fork server (and its imports) now, not on the first request.
        multiprocessing.forkserver.ensure_running()
        self._idle: dict[str, list[Environment]] = {}
        self._count = 0
        self._owned: Counter[str] = Counter()  # environments of each function, busy or idle
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, function: str) -> tuple[Environment, bool]:
        """An environment of `function` and whether it is new (cold)."""
        retire: Environment | None = None
        patience = time.monotonic() + OWN_WAIT_SECONDS
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("Runtime.Shutdown", "the server is stopping")
                idle = self._idle.get(function)
                while idle:
                    candidate = idle.pop()
                    if candidate.alive():
                        return candidate, False
                    self._forget(candidate)
                if self._count < self.max_environments:
                    break
                # At the cap. A function that has environments waits a moment for one of its own
                # (retiring another's would trade one cold start for two); then, or at once for a
                # function with none, the least recently used idle environment makes room.
                waited_enough = not self._owned[function] or time.monotonic() >= patience
                retire = self._least_recently_used() if waited_enough else None
                if retire is not None:
                    self._forget(retire)
                    break
                self._cond.wait(timeout=max(0.01, patience - time.monotonic()) if not waited_enough else None)
            self._count += 1
            self._owned[function] += 1
        if retire is not None:
            retire.stop()
        environment: Environment | None = None
        try:
            environment = Environment(self._ctx, function, self._handler_path(function), self._env)
            environment.wait_ready(INIT_TIMEOUT_SECONDS)
        except BaseException:
            if environment is not None:
                environment.kill()  # an init that timed out must not linger
            with self._cond:
                self._count -= 1
                self._owned[function] -= 1
                self._cond.notify_all()
            raise
        return environment, True

    def _forget(self, environment: Environment) -> None:
        """Count an environment out (call with the condition held)."""
        self._count -= 1
        self._owned[environment.function] -= 1

    def _least_recently_used(self) -> Environment | None:
        candidates = [(env.last_used, name) for name, envs in self._idle.items() for env in envs[:1]]
        if not candidates:
            return None
        name = min(candidates)[1]
        return self._idle[name].pop(0)

    def release(self, environment: Environment, *, healthy: bool) -> None:
        environment.last_used = time.monotonic()
        with self._cond:
            if healthy and not self._closed and environment.alive():
                self._idle.setdefault(environment.function, []).append(environment)
                self._cond.notify_all()
                return
            self._forget(environment)
            self._cond.notify_all()
        environment.kill()

    def invoke(self, function: str, event: dict[str, Any], timeout: float) -> Invocation:
        from parley.api.streaming import StreamingResponse  # noqa: PLC0415

        request_id = event.get("requestContext", {}).get("requestId", "")
        deadline = time.monotonic() + timeout
        environment, cold = self.acquire(function)
        init_ms = environment.init_ms if cold else 0.0
        try:
            kind, message = environment.invoke(event, request_id, deadline - time.monotonic())
        except InvocationTimeout:
            self.release(environment, healthy=False)  # stopped: its late answer must not reach another request
            raise
        except FunctionError:
            self.release(environment, healthy=environment.alive())
            raise
        if kind == "result":
            self.release(environment, healthy=True)
            return Invocation(message[1], cold, init_ms)
        _, status, headers, cookies = message
        body = environment.chunks(deadline, lambda healthy: self.release(environment, healthy=healthy))
        return Invocation(StreamingResponse(status, headers, body, cookies), cold, init_ms)

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {name: len(envs) for name, envs in self._idle.items() if envs}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = [env for envs in self._idle.values() for env in envs]
            self._idle.clear()
            self._cond.notify_all()
        for environment in idle:
            environment.stop()
