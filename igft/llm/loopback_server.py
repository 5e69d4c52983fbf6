"""A local OpenAI-compatible server on 127.0.0.1 that injects faults: igft's own test and benchmark target.

It speaks just enough of the wire format (`POST /v1/chat/completions`, `POST /v1/embeddings`) for
igft's client, answers GIFA labeling prompts with parseable intent lines, and can be told to
misbehave the ways real endpoints do: a truncated or empty JSON body, a connection reset, a hang past
the client's timeout, an HTTP error with a message, and 429 when more requests are in flight than it
has slots. Latency per request makes throughput measurable.

It binds 127.0.0.1 only, on a free port; every loop and sleep in it is bounded; `with LoopbackServer()
as server:` starts it and always stops it.
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import numpy as np

# Fault names accepted in `faults` / returned by `fault_for`:
#   "malformed"  200 with a JSON body cut in the middle     "empty"  200 with an empty body
#   "reset"      the connection is closed with a TCP RST    "hang"   no answer for `hang_seconds`
#   "http:STATUS[:MESSAGE]"  that status with an OpenAI-style error body
FAULTS = ("malformed", "empty", "reset", "hang")
MAX_HANG_SECONDS = 30.0
_LINE = re.compile(r"^(\d+)\. (customer|assistant): (.*)$", re.M)


def labeling_answer(prompt: str) -> str | None:
    """For a GIFA prompt, one `i. intent` line per numbered message; None for any other prompt.

    The intent is role + the message's first two words, except that a known intent listed in the
    prompt with the same role and first word is reused: like a real model, the answer depends on
    what the prompt shows, so a prompt built from another snapshot can label differently.
    """
    block = prompt.rsplit("Conversation (", 1)
    if len(block) != 2:
        return None
    lines = _LINE.findall(block[1])
    if not lines:
        return None
    # The first known intent starting `role_word_` per (role, word): roles and words hold no "_", so
    # that is the first name whose first two "_"-parts are role and word and that has a third part.
    first: dict[tuple[str, str], str] = {}
    for name in re.findall(r"^- ([a-z0-9_]+)", block[0], re.M):
        parts = name.split("_", 2)
        if len(parts) == 3:
            first.setdefault((parts[0], parts[1]), name)
    out = []
    for number, role, text in lines:
        words = re.findall(r"[a-z]+", text.lower())[:2] or ["message"]
        reuse = first.get((role, words[0]))
        out.append(f"{number}. {reuse or role + '_' + '_'.join(words)}")
    return "\n".join(out)


def text_vector(text: str, dim: int) -> list[float]:
    """A deterministic pseudo-embedding: hashed bag of words (similar texts get similar vectors)."""
    vector = np.zeros(dim, dtype=np.float64)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    vector[0] += 0.01  # never all-zero
    return [float(v) for v in vector]


@dataclass
class ServedRequest:
    path: str
    body: dict
    status: int
    fault: str | None
    started: float
    finished: float = 0.0


@dataclass
class LoopbackServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 with injectable faults (see module docstring)."""

    latency: float = field(default=0.0, metadata={"help": "seconds each answered request takes"})
    slots: int | None = field(default=None, metadata={"help": "requests served at once; more in flight get 429"})
    retry_after_ms: int = field(default=200, metadata={"help": "Retry-After sent with a slot 429"})
    faults: list[str] = field(default_factory=list, metadata={"help": "faults for the next requests, in order"})
    fault_for: Callable[[str, dict], str | None] | None = field(
        default=None, metadata={"help": "(path, body) -> fault name or None; asked after `faults` is empty"})
    hang_seconds: float = field(default=5.0, metadata={"help": "how long a 'hang' fault keeps the client waiting"})
    embed_dim: int = field(default=32, metadata={"help": "dimension of the returned embeddings"})
    api_prefix: str = field(default="/v1", metadata={"help": "path prefix of the API routes"})

    def __post_init__(self) -> None:
        self.requests: list[ServedRequest] = []
        self.statuses: Counter = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="loopback-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a client is given (with the /v1 prefix)."""
        return self.root_url + self.api_prefix

    # -- bookkeeping -----------------------------------------------------------------------------
    def count(self, path_suffix: str = "", status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith(path_suffix)
                       and (status is None or r.status == status))

    def _next_fault(self, path: str, body: dict) -> str | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        return self.fault_for(path, body) if self.fault_for is not None else None

    # -- answers ---------------------------------------------------------------------------------
    def chat_payload(self, body: dict) -> dict:
        prompt = str(body["messages"][-1]["content"]) if body.get("messages") else ""
        text = labeling_answer(prompt)
        if text is None:
            text = f"echo: {prompt[:200]}"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(text.split())
        return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def embedding_payload(self, body: dict) -> dict:
        inputs = body.get("input", [])
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": text_vector(str(t), self.embed_dim)}
                for i, t in enumerate(inputs)]
        tokens = sum(len(str(t).split()) for t in inputs)
        return {"object": "list", "data": data, "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed
        # ACK (~40 ms per request on Linux), which would swamp the latency being simulated.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # quiet in tests
            pass

        def do_GET(self) -> None:
            if self.path == "/stats":  # counters, for a client measuring a server in another process
                with server._lock:
                    stats = {"requests": len(server.requests), "statuses": {str(k): v for k, v in server.statuses.items()},
                             "max_in_flight": server.max_in_flight,
                             "chat": sum(1 for r in server.requests if r.path.endswith("/chat/completions")),
                             "embeddings": sum(1 for r in server.requests if r.path.endswith("/embeddings"))}
                self._json(200, stats)
                return
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            record = ServedRequest(self.path, body, 0, None, time.perf_counter())
            with server._lock:
                server.requests.append(record)
                server.auth_headers.append(self.headers.get("authorization"))
                over = server.slots is not None and server.in_flight >= server.slots
                if not over:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
            self._holding = not over
            try:
                if over:
                    self._finish(record, 429, {"error": {"message": "too many requests in flight", "type": "rate_limit"}},
                                 {"retry-after-ms": str(server.retry_after_ms),
                                  "retry-after": str(max(1, round(server.retry_after_ms / 1000)))})
                    return
                self._serve(record, body)
            finally:
                self._free_slot()

        def _free_slot(self) -> None:
            # A slot is free once the answer is ready, before its bytes go out, as in a real server: the
            # client may send its next request the moment it reads this answer, and that request must
            # not meet a slot still held by the request it follows (a spurious 429).
            if getattr(self, "_holding", False):
                self._holding = False
                with server._lock:
                    server.in_flight -= 1

        def _serve(self, record: ServedRequest, body: dict) -> None:
            prefix = server.api_prefix
            if self.path == f"{prefix}/chat/completions":
                payload = lambda: server.chat_payload(body)  # noqa: E731
            elif self.path == f"{prefix}/embeddings":
                payload = lambda: server.embedding_payload(body)  # noqa: E731
            else:
                self._finish(record, 404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            fault = server._next_fault(self.path, body)
            record.fault = fault
            if server.latency:
                server._stopping.wait(server.latency)
            if fault is None:
                self._finish(record, 200, payload())
            elif fault == "malformed":
                data = json.dumps(payload()).encode()
                self._raw(record, 200, data[: max(1, len(data) // 2)])
            elif fault == "empty":
                self._raw(record, 200, b"")
            elif fault == "reset":
                record.status = -1
                self._reset()
            elif fault == "hang":
                record.status = -2
                server._stopping.wait(min(server.hang_seconds, MAX_HANG_SECONDS))
                self._finish(record, 200, payload())
            elif fault.startswith("http:"):
                _, status, *message = fault.split(":", 2)
                self._finish(record, int(status), {"error": {"message": message[0] if message else f"HTTP {status}",
                                                             "type": "invalid_request_error"}})
            else:
                raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS} or http:STATUS[:MESSAGE]")

        def _finish(self, record: ServedRequest, status: int, payload: dict, headers: dict | None = None) -> None:
            self._raw(record, status, json.dumps(payload).encode(), headers)

        def _raw(self, record: ServedRequest, status: int, data: bytes, headers: dict | None = None) -> None:
            record.status = status
            record.finished = time.perf_counter()
            self._free_slot()
            with server._lock:
                server.statuses[status] += 1
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout) first
                self.close_connection = True

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self._free_slot()
            with server._lock:
                server.statuses[-1] += 1
            try:
                self.connection.close()
            except OSError:
                pass

    return Handler


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for 'unreachable server' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """`python -m igft.llm.loopback_server --latency 0.3 --slots 8`: serve until stdin closes.

    Prints the base URL on its first line. Run in its own process, its threads do not compete with
    the client's for the GIL; GET /stats returns its counters.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="igft's loopback OpenAI-compatible server (127.0.0.1 only)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answered request")
    parser.add_argument("--slots", type=int, help="requests served at once; more get 429")
    parser.add_argument("--retry-after-ms", type=int, default=200, help="Retry-After sent with a slot 429")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long whatever happens")
    args = parser.parse_args(argv)
    with LoopbackServer(latency=args.latency, slots=args.slots, retry_after_ms=args.retry_after_ms) as server:
        print(server.url, flush=True)
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        closed.wait(timeout=args.max_seconds)


if __name__ == "__main__":
    main()
