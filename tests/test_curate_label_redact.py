"""`igft label --redact`: planted PII never reaches a request, a cassette, an output file or a log."""
import logging
import re
from pathlib import Path

import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.llm.base import Completion, ScriptedLM

PLANTED = {"EMAIL": "maria.lopez77@example.com", "PHONE": "+44 20 7946 0958", "CARD": "4539 1488 0343 6467",
           "IBAN": "GB82 WEST 1234 5698 7654 32", "URL": "https://shop.example.com/orders/88123/status",
           "IP": "203.0.113.77"}
# Other spellings a leak could take (digits only, compact IBAN, lower case).
VARIANTS = ["4539148803436467", "GB82WEST12345698765432", "442079460958", "maria.lopez77"]


def planted_dataset():
    p = PLANTED
    lines = [
        [("customer", f"Hi, my card {p['CARD']} was charged twice, mail me at {p['EMAIL']}"),
         ("assistant", "Sorry about that. Which e-mail is on the account?"),
         ("customer", f"{p['EMAIL']}, or call {p['PHONE']}")],
        [("customer", f"Please refund to {p['IBAN']}"),
         ("assistant", "Could you send the order link?"),
         ("customer", f"{p['URL']} and my login came from {p['IP']}")],
    ]
    return Dataset([Conversation(c, tuple(Message(c, i, r, t) for i, (r, t) in enumerate(msgs)))
                    for c, msgs in enumerate(lines)], "planted")


def run_label(tmp_path: Path, name: str, *extra: str):
    csv = planted_dataset().save(tmp_path / "input" / "data.csv")
    out, cassette = tmp_path / name / "out", tmp_path / name / "cassette"
    argv = ["label", "--data", str(csv), "--llm", "scripted", "--embedder", "hashing", "--mode", "record",
            "--cassette", str(cassette), "--out", str(out), "--no-progress", "--max-retries", "0", *extra]
    return main(argv), [out, cassette]


@pytest.fixture
def capture(monkeypatch, tmp_path):
    """Every request sent to the (scripted) LLM, and a DEBUG log of every logger into a file."""
    requests = []

    def complete(self, request):
        # Answer GIFA like a model would (one intent per numbered message), so every step runs.
        requests.append(request)
        block = request.messages[-1]["content"].rsplit("Conversation (", 1)[-1]
        numbers = re.findall(r"^(\d+)\. (?:customer|assistant): ", block, re.M)
        return Completion("\n".join(f"{n}. intent_{n}" for n in numbers) or "ok", model=self.model)

    monkeypatch.setattr(ScriptedLM, "complete", complete)
    log_path = tmp_path / "debug.log"
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield requests, log_path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


def written_text(folders) -> str:
    files = [f for folder in folders for f in Path(folder).rglob("*") if f.is_file()]
    assert files, "the run wrote nothing"
    return "\n".join(f.read_bytes().decode("utf-8", errors="replace") for f in files)


def leaks(text: str) -> list[str]:
    return [v for v in [*PLANTED.values(), *VARIANTS] if v.lower() in text.lower()]


def test_without_redact_the_pii_does_reach_the_cassette(tmp_path, capture):
    """Control: the same run without --redact leaks, so the grep below can see a leak."""
    requests, _ = capture
    rc, folders = run_label(tmp_path, "plain")
    assert rc == 0 and requests
    assert set(leaks(written_text(folders))) >= set(PLANTED.values())


def test_label_redact_keeps_planted_pii_out_of_requests_cassettes_outputs_and_logs(tmp_path, capture, capsys):
    requests, log_path = capture
    rc, folders = run_label(tmp_path, "redacted", "--redact")
    assert rc == 0
    console = capsys.readouterr()
    sent = "\n".join(m["content"] for r in requests for m in r.messages)
    assert requests and leaks(sent) == []
    assert "{{CARD_1}}" in sent and "{{EMAIL_1}}" in sent  # redacted, not dropped
    files = written_text(folders)
    assert leaks(files) == [], f"raw PII written under {folders}"
    assert "{{IBAN_1}}" in files and (folders[0] / "redaction_report.json").is_file()
    log = log_path.read_text(encoding="utf-8")
    assert log and leaks(log) == []
    assert leaks(console.out + console.err) == []
