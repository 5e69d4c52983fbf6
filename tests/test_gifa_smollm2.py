"""GIFA end to end with the real bundled SmolLM2-135M and MiniLM (no fakes) on two short conversations.

SmolLM2-135M usually cannot follow the labeling protocol (it tends to copy the conversation), so the
assertion is about the machinery: every conversation ends labeled or recorded as failed with a reason,
and the outputs are well formed.
"""
import re

import pytest

from igft.data import Conversation, Dataset, Message
from igft.gifa import GifaConfig, label_dataset
from igft.labeling import write_outputs

pytestmark = pytest.mark.slow


def two_short_conversations():
    texts = [
        [("customer", "Hi, where is my parcel?"), ("assistant", "Could you give me your order number?"),
         ("customer", "It is 4417.")],
        [("customer", "Hello, I was charged twice."), ("assistant", "Sorry! I have refunded the extra charge.")],
    ]
    return Dataset([Conversation(c, tuple(Message(c, i, r, t, None) for i, (r, t) in enumerate(msgs)))
                    for c, msgs in enumerate(texts)], "two-short")


def test_gifa_with_bundled_smollm2_and_minilm(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    from igft.llm.factory import build_embedder, build_lm

    ds = two_short_conversations()
    lm = build_lm("local:smollm2", mode="live")
    embedder = build_embedder("local:minilm", mode="live")
    config = GifaConfig(max_retries=1, tokens_per_message=10)
    result = label_dataset(ds, lm, embedder, config, out_dir=tmp_path, progress=False)

    assert lm.meter.live_calls == result.stats["calls"] >= 2
    failed = {f["conversation_number"] for f in result.failures}
    for conv in ds.conversations:
        keys = [m.key for m in conv.messages]
        if conv.number in failed:
            assert not any(k in result.labels for k in keys)
            reason = next(f["reason"] for f in result.failures if f["conversation_number"] == conv.number)
            assert reason.startswith("no usable answer in")
        else:
            assert all(re.fullmatch(r"[a-z][a-z0-9_]*", result.labels[k]) for k in keys)
    catalog = result.catalog
    assert list(catalog.columns) == ["intent", "description", "examples", "count"]
    assert catalog["count"].sum() == len(result.labels)
    assert set(catalog["intent"]) == set(result.labels.values())
    paths = write_outputs(result, ds, tmp_path)
    assert paths["labels"].exists() and paths["catalog"].exists()
    assert (tmp_path / "progress.jsonl").read_text().count("\n") == 1 + len(ds)
