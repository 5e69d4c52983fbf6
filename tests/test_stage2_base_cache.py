"""Stage 2's base-model replies are generated once per machine for the same requests, then read back."""
from __future__ import annotations

import json

from igft.pipeline import stage2
from igft.pipeline.config import PipelineConfig


def _samples(n=3):
    return [{"id": f"7:{i}", "conversation_number": 7, "turn": i, "format": "intent+response",
             "prompt": [{"role": "user", "content": f"hello {i}"}], "reference": "hi", "gold_intents": ["greet"]}
            for i in range(n)]


def test_base_replies_come_from_the_cache_for_the_same_requests_only(tmp_path, monkeypatch):
    monkeypatch.setenv("IGFT_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_generate(samples, path, cfg, catalog, *, model_spec, adapter):
        calls.append(len(samples))
        records = [{"id": x["id"], "reply": f"reply {x['id']}", "intents": catalog[:1], "malformed": False} for x in samples]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return records

    monkeypatch.setattr(stage2, "_generate", fake_generate)
    cfg, samples = PipelineConfig(), _samples()
    first, cached = stage2._base_predictions(samples, tmp_path / "a" / "base.jsonl", cfg, ["greet"], "smollm2")
    assert not cached and calls == [3]
    again, cached = stage2._base_predictions(samples, tmp_path / "b" / "base.jsonl", cfg, ["greet"], "smollm2")
    assert cached and again == first and calls == [3]  # read back, not generated
    assert (tmp_path / "b" / "base.jsonl").read_text() == (tmp_path / "a" / "base.jsonl").read_text()
    # another catalog, other prompts or other decoding settings are other requests: generated anew
    stage2._base_predictions(samples, tmp_path / "c" / "base.jsonl", cfg, ["greet", "bye"], "smollm2")
    stage2._base_predictions(_samples(2), tmp_path / "d" / "base.jsonl", cfg, ["greet"], "smollm2")
    cfg.stage2.max_new_tokens += 1
    stage2._base_predictions(samples, tmp_path / "e" / "base.jsonl", cfg, ["greet"], "smollm2")
    assert calls == [3, 3, 2, 3]
