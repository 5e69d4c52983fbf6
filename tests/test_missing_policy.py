"""Missing-label policies of igft.metrics and `igft evaluate`, with hand-computed figures."""
import json

import pytest

from igft.cli import main
from igft.data import Conversation, Dataset, Message
from igft.metrics import MetricsError, UNLABELED_CLUSTER, clustering_report, evaluate_labels, format_report
from igft.resources import toy_conversations_path

GOLD = ["a", "a", "b", "b", "c", "c"]
PRED = ["x", "x", "y", None, None, None]  # three labeled messages, three unlabeled


def test_cluster_policy_puts_every_unlabeled_message_in_one_extra_cluster():
    report = clustering_report(GOLD, PRED, missing="cluster")
    # clusters {a, a}, {b}, unlabeled {b, c, c}: purity (2 + 1 + 2) / 6; mean cluster purity (1 + 1 + 2/3) / 3
    assert report.purity == pytest.approx(5 / 6)
    assert report.NCA == pytest.approx(((1 + 1 + 2 / 3) / 3 - 1 / 3) / (1 - 1 / 3))  # = 5/6
    assert report.coverage == 0.5 and report.n_missing == 3 and report.n_messages == 6
    assert report.n_pred_intents == 2 and report.pred_counts[UNLABELED_CLUSTER] == 3
    # pairs: same-cluster pairs 1 (x) + 3 (unlabeled) = 4, of which same gold 1 + 1 (c, c)
    assert report.pairwise_precision == pytest.approx(2 / 4)


def test_singleton_policy_raises_nca_where_cluster_does_not():
    singleton = clustering_report(GOLD, PRED, missing="singleton")
    cluster = clustering_report(GOLD, PRED, missing="cluster")
    labeled_only_perfect = 1.0
    # every singleton is pure: failing to label half the messages still gives a perfect NCA and purity
    assert singleton.NCA == pytest.approx(labeled_only_perfect) and singleton.purity == 1.0
    assert cluster.NCA == pytest.approx(5 / 6) and cluster.NCA < singleton.NCA
    assert cluster.purity < singleton.purity


def test_drop_policy_scores_only_the_labeled_messages():
    report = clustering_report(GOLD, PRED, missing="drop")
    # left: gold a, a, b / pred x, x, y: a perfect clustering of 3 messages, 2 gold classes
    assert report.n_messages == 3 and report.n_missing == 3 and report.coverage == 0.5
    assert report.purity == 1.0 and report.NCA == pytest.approx(1.0) and report.AMI == pytest.approx(1.0)
    assert UNLABELED_CLUSTER not in report.pred_counts


def test_free_string_gold_labels_and_unknown_policy():
    report = clustering_report(["Billing question", "Billing question", "Zahlung?"], ["p", "p", None])
    assert report.gold_counts == {"Billing question": 2, "Zahlung?": 1} and report.purity == 1.0
    with pytest.raises(MetricsError, match="missing-label policy"):
        clustering_report(GOLD, PRED, missing="ignore")


def test_report_shows_coverage_first_when_below_one():
    messages = [Message(0, i, "customer", f"text {i}", g) for i, g in enumerate(GOLD)]
    dataset = Dataset([Conversation(0, tuple(messages))])
    labels = {(0, i): p for i, p in enumerate(PRED) if p is not None}
    report = evaluate_labels(dataset, labels)
    assert report.missing_policy == "cluster" and report.coverage == 0.5
    first = format_report(report).splitlines()[0]
    assert first.startswith("coverage 0.5000") and "cluster" in first
    full = evaluate_labels(dataset, {(0, i): g for i, g in enumerate(GOLD)})
    assert not format_report(full).startswith("coverage")


def _labels_csv(path, rows):
    path.write_text("conversation_number,index,intent\n" + "".join(f"{c},{i},{p}\n" for c, i, p in rows))
    return path


def test_evaluate_with_no_message_in_common_exits_2_in_one_line(tmp_path, capsys):
    pred = _labels_csv(tmp_path / "labels.csv", [(987654, 0, "x"), (987654, 1, "y")])
    assert main(["evaluate", "--gold", str(toy_conversations_path()), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no message" in err


def test_evaluate_missing_flag_and_low_coverage_warning(tmp_path, capsys):
    from igft.data import load_conversations

    toy = load_conversations(toy_conversations_path())
    first = toy.conversations[0]
    pred = _labels_csv(tmp_path / "labels.csv", [(m.conversation_number, m.index, "same") for m in first.messages])
    results = {}
    for policy in ("cluster", "drop", "singleton"):
        assert main(["evaluate", "--gold", str(toy_conversations_path()), "--pred", str(pred), "--json",
                     "--missing", policy]) == 0
        captured = capsys.readouterr()
        results[policy] = json.loads(captured.out)
        assert "warning" in captured.err and len(captured.err.strip().splitlines()) == 1
    coverage = len(first.messages) / toy.n_messages
    assert all(r["coverage"] == pytest.approx(coverage) for r in results.values())
    assert results["drop"]["n_messages"] == len(first.messages)
    assert results["singleton"]["NCA"] > results["cluster"]["NCA"]
