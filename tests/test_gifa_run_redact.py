"""`--redact` is a recorded setting of `igft label`: run.json keeps it for replays, and a resume in the
same --out with the other setting is refused (its prompts differ), like other mismatched settings."""
import json
import re

import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.llm.base import Completion, ScriptedLM

EMAIL = "maria.lopez77@example.com"


def dataset():
    lines = [[("customer", f"Hi, please mail the invoice to {EMAIL}"), ("assistant", "Sure, sending it now.")],
             [("customer", "Where is my parcel?"), ("assistant", "It ships tomorrow.")],
             [("customer", f"Also cc {EMAIL} please"), ("assistant", "Done.")]]
    return Dataset([Conversation(c, tuple(Message(c, i, r, t) for i, (r, t) in enumerate(msgs)))
                    for c, msgs in enumerate(lines)], "redact-resume")


@pytest.fixture
def sent(monkeypatch):
    """The prompts the scripted LLM receives; it answers one intent per numbered message."""
    prompts = []

    def complete(self, request):
        prompts.append(request.messages[-1]["content"])
        block = request.messages[-1]["content"].rsplit("Conversation (", 1)[-1]
        numbers = re.findall(r"^(\d+)\. (?:customer|assistant): ", block, re.M)
        return Completion("\n".join(f"{n}. intent_{n}" for n in numbers), model=self.model)

    monkeypatch.setattr(ScriptedLM, "complete", complete)
    return prompts


def label(csv, out, *extra):
    return main(["label", "--data", str(csv), "--llm", "scripted", "--embedder", "hashing", "--out", str(out),
                 "--no-progress", "--max-retries", "0", *extra])


def test_run_json_records_redact_and_a_replay_repeats_it(tmp_path, sent):
    csv = dataset().save(tmp_path / "data.csv")
    cassette = tmp_path / "cassette"
    assert label(csv, tmp_path / "rec", "--mode", "record", "--cassette", str(cassette), "--redact") == 0
    assert json.loads((cassette / "run.json").read_text())["redact"] is True
    assert sent and not any(EMAIL in p for p in sent)
    # A replay without the flag takes redaction from run.json: every request is found in the cassette.
    live_before = len(sent)
    assert label(csv, tmp_path / "replay", "--mode", "replay", "--cassette", str(cassette)) == 0
    assert len(sent) == live_before  # replay: the scripted LM is never called
    stats = json.loads((tmp_path / "replay" / "stats.json").read_text())
    assert stats["live_calls"] == 0 and stats["failures"] == 0
    assert EMAIL not in (tmp_path / "replay" / "labels.csv").read_text()


def test_a_resume_with_the_other_redact_setting_is_refused_naming_it(tmp_path, sent, capsys):
    csv = dataset().save(tmp_path / "data.csv")
    out = tmp_path / "out"
    assert label(csv, out, "--redact", "--max-conversations", "1") == 0
    capsys.readouterr()
    assert label(csv, out, "--max-conversations", "3") != 0  # unredacted prompts would follow redacted ones
    err = capsys.readouterr().err
    assert "redact" in err and "Traceback" not in err
    # The reverse: progress of an unredacted run is not continued with --redact either.
    plain = tmp_path / "plain"
    assert label(csv, plain, "--max-conversations", "1") == 0
    capsys.readouterr()
    assert label(csv, plain, "--redact", "--max-conversations", "3") != 0
    assert "redact" in capsys.readouterr().err
    # The same setting resumes and finishes the run.
    assert label(csv, out, "--redact", "--max-conversations", "3") == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["resumed_conversations"] == 1 and stats["labeled_messages"] == 6
