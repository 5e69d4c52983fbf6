"""Gold intents are the user's free strings; the data package's layering; the `synthetic` marker."""
import ast
from pathlib import Path

import pytest

from igft.data import Conversation, Dataset, Message, load_conversations
from igft.resources import repo_root

FREE_LABELS = ["Request late check-out", "inform__request_alts", "Billing / Refund?", "  padded label  ",
               "ÜBER-intent (v2)", "REQUEST_ALTS"]
SGD = Path(__file__).resolve().parents[1] / ".." / "shared" / "external" / "sgd"


def test_free_string_gold_labels_load_stripped_and_unchanged(tmp_path):
    rows = ["conversation_number,conversation,index,intent"]
    for i, label in enumerate(FREE_LABELS):
        rows.append(f'{i},"customer: message {i}",0,"{label}"')
    path = tmp_path / "free.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded = load_conversations(path)
    assert [m.intent for m in loaded.messages] == [label.strip() for label in FREE_LABELS]
    # a round trip keeps them as written (no snake_case normalisation of gold)
    again = load_conversations(loaded.save(tmp_path / "again.csv"))
    assert [m.intent for m in again.messages] == [m.intent for m in loaded.messages]
    jsonl = load_conversations(loaded.save(tmp_path / "again.jsonl"))
    assert [m.intent for m in jsonl.messages] == [m.intent for m in loaded.messages]


def test_free_labels_score_like_their_snake_case_versions(tmp_path):
    """Metrics compare gold strings by identity, so the label's spelling never changes a score."""
    from igft.metrics import evaluate_labels

    convs = [Conversation(i, (Message(i, 0, "customer", f"text {i}", FREE_LABELS[i % 3]),)) for i in range(9)]
    gold = Dataset(convs)
    predicted = {(i, 0): f"cluster_{i % 3}" for i in range(9)}
    report = evaluate_labels(gold, predicted).to_dict()
    assert report["AMI"] == pytest.approx(1.0) and report["n_gold_intents"] == 3


def test_synthetic_marker_round_trips_and_defaults_to_false(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("conversation_number,conversation,index,intent,synthetic\n0,customer: Hi,0,greet,0\n"
                    "0,assistant: Hello,1,greet,1\n", encoding="utf-8")
    loaded = load_conversations(path)
    assert [m.synthetic for m in loaded.messages] == [False, True]
    assert "synthetic" in loaded.to_frame().columns
    back = load_conversations(loaded.save(tmp_path / "back.jsonl"))
    assert [m.synthetic for m in back.messages] == [False, True]
    plain = Dataset([Conversation(0, (Message(0, 0, "customer", "Hi"),))])
    assert "synthetic" not in plain.to_frame().columns  # files without generated messages keep the paper's layout


def test_model_module_imports_no_reader_or_writer():
    """Dependencies run one way: the model never imports the I/O modules at import time."""
    source = (repo_root() / "igft" / "data" / "model.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [n.module or "" for n in top_level if isinstance(n, ast.ImportFrom)] + \
            [a.name for n in top_level if isinstance(n, ast.Import) for a in n.names]
    assert not any(name.startswith(("igft.data.readers", "igft.data.writers", "igft.data.validation", "pandas"))
                   for name in names)
    assert not (repo_root() / "igft" / "data.py").exists() and not (repo_root() / "igft" / "data_validation.py").exists()


@pytest.mark.skipif(not (SGD / "dev").is_dir(), reason="Schema-Guided Dialogue not in ../shared/external/sgd")
def test_sgd_labels_load_as_written():
    files = sorted((SGD / "dev").glob("*.csv"))
    assert files
    loaded = load_conversations(files[0])
    labels = {m.intent for m in loaded.messages}
    assert loaded.has_gold and all(label == label.strip() and label for label in labels)
    # SGD's joined dialogue acts are not all snake_case words (double underscores, capitals)
    assert any("__" in label or label != label.lower() or " " in label for label in labels)
