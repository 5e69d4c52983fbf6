"""Live GIFA throughput against an OpenAI-compatible server: wall time vs the ideal, and the share of 429s.

Default server: igft's own loopback server (igft/llm/loopback_server.py) on 127.0.0.1 with a fixed
latency per request and a number of slots (more requests in flight get 429 + Retry-After). igft labels
synthetic conversations with `--window` conversations at once, chat and embeddings through the
openai-compatible backend (adaptive concurrency limit, embedding batches in parallel).

    python benchmarks/live_throughput.py                         # 300 ms, 8 slots, then 4 slots; 120 conversations
    python benchmarks/live_throughput.py --conversations 64 --latency 0.3
    python benchmarks/live_throughput.py --server llamacpp       # llama.cpp serving the bundled SmolLM2 GGUF

Ideal wall time = requests x latency / slots (every slot busy all the time). Targets: at most 1.15x
the ideal with as many slots as the concurrency; at most 5% of requests answered 429 with half as many.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEMPLATES = [("customer", "hello my parcel {c} never arrived"), ("assistant", "sorry, what is your order number"),
             ("customer", "it is {c}{c}"), ("assistant", "thanks, a new parcel is on its way"),
             ("customer", "thanks bye {c}")]


def synthetic_dataset(n: int):
    from igft.data import Conversation, Dataset, Message

    return Dataset([Conversation(c, tuple(Message(c, i, role, text.format(c=c)) for i, (role, text) in enumerate(TEMPLATES)))
                    for c in range(n)], "throughput")


def label_live(url: str, model: str, embed_model: str | None, n: int, window: int, concurrency: int,
               embed_batch: int, on_warm=None) -> tuple[float, object]:
    from igft.gifa import GifaConfig, label_dataset
    from igft.llm import HashingEmbedder, build_embedder, build_lm

    lm = build_lm(f"openai-compatible:{url}:{model}", max_concurrency=concurrency)
    embedder = (build_embedder(f"openai-compatible:{url}:{embed_model}", max_concurrency=concurrency,
                               batch_size=embed_batch) if embed_model else HashingEmbedder())
    config = GifaConfig(window=window, embed_workers=concurrency, embed_batch_size=embed_batch, max_retries=0)
    # One warm-up call per endpoint, untimed: the SDK builds its pydantic response models on first use
    # (about a second here), a one-off cost that is not throughput.
    from igft.llm import ask

    ask(lm, "warm-up", max_tokens=4)
    embedder.embed(["warm-up"])
    if on_warm is not None:
        on_warm()
    started = time.perf_counter()
    result = label_dataset(synthetic_dataset(n), lm, embedder, config, progress=False)
    return time.perf_counter() - started, result


def loopback(args) -> None:
    import json
    import urllib.request

    print(f"igft loopback server (own process), {args.latency * 1000:.0f} ms per request, {args.conversations} "
          f"conversations x {len(TEMPLATES)} messages, window {args.window}, concurrency {args.concurrency}")
    for slots in (args.slots, max(1, args.slots // 2)):
        server = subprocess.Popen([sys.executable, "-m", "igft.llm.loopback_server", "--latency", str(args.latency),
                                   "--slots", str(slots), "--retry-after-ms", str(int(args.latency * 1000)),
                                   "--max-seconds", "900"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().strip()
            read_stats = lambda: json.loads(urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/stats", timeout=10).read())  # noqa: E731
            warm: list[dict] = []
            seconds, result = label_live(url, "m", "e", args.conversations, args.window, args.concurrency,
                                         args.embed_batch, on_warm=lambda: warm.append(read_stats()))
            after = read_stats()
            stats = {key: after[key] - warm[0][key] for key in ("requests", "chat", "embeddings")}
            stats["statuses"] = {k: v - warm[0]["statuses"].get(k, 0) for k, v in after["statuses"].items()}
            stats["max_in_flight"] = after["max_in_flight"]
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        total, limited = stats["requests"], stats["statuses"].get("429", 0)
        answered = total - limited
        ideal = answered * args.latency / slots
        print(f"  {slots} slots: {seconds:.2f} s wall for {answered} answered requests (sent: {stats['chat']} chat, "
              f"{stats['embeddings']} embedding); ideal {ideal:.2f} s -> {seconds / ideal:.2f}x; "
              f"429: {limited} of {total} requests ({limited / total:.1%}); max in flight at the server "
              f"{stats['max_in_flight']}; failures {len(result.failures)}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)


def llamacpp(args) -> None:
    import socket

    from igft.llm.local_models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                               "--port", str(port), "--n_ctx", "4096"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_for(url, 120)
        print(f"llama.cpp server (llama-cpp-python) with {gguf.name}, {args.conversations} conversations, "
              f"embeddings: hashing (local)")
        for window in (1, args.window):
            seconds, result = label_live(url, "smollm2", None, args.conversations, window, args.concurrency,
                                         args.embed_batch)
            print(f"  window {window}: {seconds:.1f} s wall, {seconds / args.conversations:.2f} s per conversation, "
                  f"{len(result.failures)} failed (SmolLM2-135M cannot really do GIFA)", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no server answered at {url} within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("loopback", "llamacpp"), default="loopback")
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.3, help="loopback: seconds per request")
    parser.add_argument("--slots", type=int, default=8, help="loopback: requests served at once (then half as many)")
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--embed-batch", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory():
        (loopback if args.server == "loopback" else llamacpp)(args)


if __name__ == "__main__":
    main()
