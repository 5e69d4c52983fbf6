"""Cassettes: record / replay / strict misses / occurrences / crash safety / versioning (hermetic)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from igft.errors import IgftError
from igft.llm import (CassetteEmbedder, CassetteFormatError, CassetteLM, CassetteMiss, CompletionRequest,
                      HashingEmbedder, ScriptedLM, ask, build_embedder, build_lm, request_key)


def _never_built():
    raise AssertionError("replay must not construct the model")


def _reply(request: CompletionRequest) -> str:
    return "reply to " + request.messages[-1]["content"].upper()


PROMPTS = ["hello", "where is my parcel", "refund please", "hello"]


def test_record_then_replay_is_identical_with_zero_live_calls(tmp_path):
    cassette = tmp_path / "c.jsonl"
    lm = build_lm("scripted", mode="record", cassette=cassette, script=_reply)
    recorded = [ask(lm, p, max_tokens=30) for p in PROMPTS]
    assert [c.cached for c in recorded] == [False] * 4
    assert lm.meter.snapshot()["live_calls"] == 4

    replay = CassetteLM(_never_built, cassette, "replay", model="scripted")
    replayed = [ask(replay, p, max_tokens=30) for p in PROMPTS]
    assert [c.text for c in replayed] == [c.text for c in recorded]
    assert [(c.prompt_tokens, c.completion_tokens) for c in replayed] == \
        [(c.prompt_tokens, c.completion_tokens) for c in recorded]
    assert all(c.cached for c in replayed)

    metered = build_lm("scripted", mode="replay", cassette=cassette, script=lambda r: _never_built())
    assert [ask(metered, p, max_tokens=30).text for p in PROMPTS] == [c.text for c in recorded]
    snap = metered.meter.snapshot()
    assert (snap["calls"], snap["live_calls"], snap["cached_calls"]) == (4, 0, 4)


def test_changed_prompt_gives_a_clear_miss(tmp_path):
    cassette = tmp_path / "c.jsonl"
    ask(build_lm("scripted", mode="record", cassette=cassette, script=_reply), "where is my parcel")
    replay = build_lm("scripted", mode="replay", cassette=cassette)
    request = CompletionRequest.from_prompt("where is my parcel now?")
    with pytest.raises(CassetteMiss) as info:
        replay.complete(request)
    message = str(info.value)
    assert isinstance(info.value, IgftError) and "\n" not in message
    assert request_key("scripted", request)[:12] in message
    assert "where is my parcel now?" in message and "rerun with --mode record" in message
    # Every request field is part of the key: another max_tokens is another request too.
    with pytest.raises(CassetteMiss):
        replay.complete(CompletionRequest.from_prompt("where is my parcel", max_tokens=7))
    # ... and so is the model name.
    with pytest.raises(CassetteMiss):
        ask(CassetteLM(_never_built, cassette, "replay", model="local:smollm2"), "where is my parcel")


def test_repeated_identical_requests_get_occurrence_numbers(tmp_path):
    cassette = tmp_path / "c.jsonl"
    sampled = ScriptedLM(["first", "second", "third"])
    lm = CassetteLM(sampled, cassette, "record")
    request = CompletionRequest.from_prompt("tell a joke", temperature=0.9)
    assert [lm.complete(request).text for _ in range(3)] == ["first", "second", "third"]
    records = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert [r["occurrence"] for r in records] == [0, 1, 2]
    assert len({r["key"] for r in records}) == 1 and records[0]["format"] == 1
    assert set(records[0]) >= {"format", "key", "occurrence", "model", "request", "response", "recorded_at"}
    assert set(records[0]["response"]) == {"text", "prompt_tokens", "completion_tokens", "model"}

    replay = CassetteLM(_never_built, cassette, "replay", model="scripted")
    assert [replay.complete(request).text for _ in range(3)] == ["first", "second", "third"]
    with pytest.raises(CassetteMiss, match="occurrence 3 of a request recorded 3 time"):
        replay.complete(request)

    # A new session starts counting at 0 again; record mode replays hits without calling the model.
    again = CassetteLM(ScriptedLM(["fourth"]), cassette, "record")
    assert [again.complete(request).text for _ in range(4)] == ["first", "second", "third", "fourth"]
    assert [json.loads(line)["occurrence"] for line in cassette.read_text().splitlines()] == [0, 1, 2, 3]


def test_occurrence_counting_is_thread_safe(tmp_path):
    cassette = tmp_path / "c.jsonl"
    counter = iter(range(10_000))
    lock = threading.Lock()

    def numbered(request):
        with lock:
            return f"answer {next(counter)}"

    lm = CassetteLM(ScriptedLM(numbered), cassette, "record")
    request = CompletionRequest.from_prompt("same", temperature=1.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda _: lm.complete(request).text, range(64)))
    records = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert sorted(r["occurrence"] for r in records) == list(range(64))
    assert sorted(texts) == sorted(r["response"]["text"] for r in records)
    # Distinct requests issued concurrently each get occurrence 0 of their own key.
    lm2 = CassetteLM(ScriptedLM(_reply), tmp_path / "d.jsonl", "record")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: ask(lm2, f"q{i}"), range(40)))
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(records) == 40 and {r["occurrence"] for r in records} == {0}


KILLED_SCRIPT = r"""
import os, signal, sys
from igft.llm import build_lm, ask
lm = build_lm("scripted", mode="record", cassette=sys.argv[1], script=lambda r: "ok " + r.messages[-1]["content"])
for i in range(3):
    ask(lm, f"message {i}")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_mid_record_cassette_still_replays_what_it_has(tmp_path):
    cassette = tmp_path / "c.jsonl"
    proc = subprocess.run([sys.executable, "-c", KILLED_SCRIPT, str(cassette)], capture_output=True)
    assert proc.returncode != 0  # really killed, no clean exit
    # Simulate a kill in the middle of writing the next line as well.
    with open(cassette, "ab") as handle:
        handle.write(b'{"format": 1, "kind": "chat", "key": "abc", "occ')
    replay = build_lm("scripted", mode="replay", cassette=cassette)
    assert [ask(replay, f"message {i}").text for i in range(3)] == ["ok message 0", "ok message 1", "ok message 2"]
    with pytest.raises(CassetteMiss):
        ask(replay, "message 3")
    # Resuming in record mode appends cleanly after the torn line and replays everything afterwards.
    resume = build_lm("scripted", mode="record", cassette=cassette, script=lambda r: "resumed")
    assert [ask(resume, f"message {i}").text for i in range(4)] == ["ok message 0", "ok message 1",
                                                                     "ok message 2", "resumed"]
    assert resume.meter.snapshot()["live_calls"] == 1
    final = build_lm("scripted", mode="replay", cassette=cassette)
    assert ask(final, "message 3").text == "resumed"


def test_unknown_format_version_is_a_clear_error(tmp_path):
    cassette = tmp_path / "c.jsonl"
    ask(build_lm("scripted", mode="record", cassette=cassette), "hi")
    record = json.loads(cassette.read_text())
    record["format"] = 99
    cassette.write_text(json.dumps(record) + "\n")
    with pytest.raises(CassetteFormatError, match="format version 99.*version 1") as info:
        build_lm("scripted", mode="replay", cassette=cassette)
    assert "line 1" in str(info.value) and "\n" not in str(info.value)
    cassette.write_text('{"hello": 1}\n')
    with pytest.raises(CassetteFormatError, match="not an igft cassette"):
        build_lm("scripted", mode="replay", cassette=cassette)
    cassette.write_text('not json\n{"format": 1}\n')
    with pytest.raises(CassetteFormatError, match="line 1 is not valid JSON"):
        build_lm("scripted", mode="replay", cassette=cassette)


def test_modes_are_validated(tmp_path):
    with pytest.raises(IgftError, match="needs a cassette file"):
        build_lm("scripted", mode="replay")
    with pytest.raises(IgftError, match="unknown mode 'dummy'"):
        build_lm("scripted", mode="dummy", cassette=tmp_path / "c.jsonl")
    live = build_lm("scripted", script=lambda r: "live answer")
    assert ask(live, "x").text == "live answer" and not (tmp_path / "c.jsonl").exists()


def test_replay_of_missing_file_misses_with_the_fix(tmp_path):
    replay = build_lm("scripted", mode="replay", cassette=tmp_path / "absent.jsonl")
    with pytest.raises(CassetteMiss, match="rerun with --mode record"):
        ask(replay, "anything")


class CountingEmbedder(HashingEmbedder):
    def __init__(self):
        super().__init__(dim=32)
        self.batches: list[list[str]] = []

    def embed(self, texts):
        self.batches.append(list(texts))
        return super().embed(texts)


def test_embedding_cassette_is_keyed_per_text(tmp_path):
    cassette = tmp_path / "e.jsonl"
    inner = CountingEmbedder()
    recorder = CassetteEmbedder(inner, cassette, "record")
    first = recorder.embed(["a cat", "a dog", "a cat"])
    assert inner.batches == [["a cat", "a dog"]]  # misses in one batch, deduplicated
    second = recorder.embed(["a dog", "a bird", "a fish", "a cat"])
    assert inner.batches[1] == ["a bird", "a fish"]  # hits are never re-embedded
    np.testing.assert_array_equal(second[[0, 3]], first[[1, 0]])

    replay = CassetteEmbedder(_never_built, cassette, "replay", model="hashing")
    texts = ["a fish", "a cat", "a bird", "a dog"]
    np.testing.assert_array_equal(replay.embed(texts), HashingEmbedder(dim=32).embed(texts))
    for batch in (["a cat"], ["a dog", "a cat"]):  # any batching replays the same rows
        np.testing.assert_array_equal(replay.embed(batch), HashingEmbedder(dim=32).embed(batch))
    with pytest.raises(CassetteMiss, match="2 text\\(s\\).*'a cow'.*--mode record"):
        replay.embed(["a cat", "a cow", "a pig"])

    records = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(records) == 4 and all(r["kind"] == "embedding" and r["dim"] == 32 for r in records)
    assert all(isinstance(r["vector"], str) for r in records)  # base64 float32, not a JSON list


def test_chat_and_embedding_records_share_one_file(tmp_path):
    cassette = tmp_path / "run.jsonl"
    lm = build_lm("scripted", mode="record", cassette=cassette, script=_reply)
    embedder = build_embedder("hashing", mode="record", cassette=cassette)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: ask(lm, f"q{i}") if i % 2 else embedder.embed([f"t{i}", f"u{i}"]), range(40)))
    kinds = [json.loads(line)["kind"] for line in cassette.read_text().splitlines()]
    assert kinds.count("chat") == 20 and kinds.count("embedding") == 40
    lm2 = build_lm("scripted", mode="replay", cassette=cassette)
    embedder2 = build_embedder("hashing", mode="replay", cassette=cassette)
    assert ask(lm2, "q5").text == "reply to Q5"
    assert embedder2.embed(["t4", "u8"]).shape == (2, 256)
    snap = embedder2.meter.snapshot()
    assert (snap["embedded_texts"], snap["live_embedded_texts"]) == (2, 0)


def test_a_failed_call_gives_its_occurrence_back(tmp_path):
    cassette = tmp_path / "c.jsonl"
    attempts = []

    def flaky(request):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("transient")
        return f"answer {len(attempts)}"

    lm = CassetteLM(ScriptedLM(flaky), cassette, "record")
    request = CompletionRequest.from_prompt("same", temperature=0.5)
    with pytest.raises(ConnectionError):
        lm.complete(request)
    assert [lm.complete(request).text for _ in range(2)] == ["answer 2", "answer 3"]
    replay = CassetteLM(_never_built, cassette, "replay", model="scripted")
    assert [replay.complete(request).text for _ in range(2)] == ["answer 2", "answer 3"]
