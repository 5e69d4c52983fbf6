"""METEOR offline from Debian's WordNet files (or unavailable with the reason), and intent F1 on free-string gold."""
from __future__ import annotations

import pytest

from igft.finetune import scores
from igft.finetune.scores import intent_scores, meteor, meteor_status


@pytest.mark.skipif(not (scores.DEBIAN_WORDNET / "index.sense").is_file(),
                    reason="Debian's wordnet-base + wordnet-sense-index not installed (make wordnet)")
def test_meteor_runs_offline_on_debian_wordnet(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setenv("IGFT_CACHE", str(tmp_path))  # a fresh cache: the files are copied there
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    assert meteor_status() is None
    assert (tmp_path / "nltk_data" / "corpora" / "wordnet" / "lexnames").is_file()
    same = meteor(["the cat sat on the mat"], ["the cat sat on the mat"])
    synonym = meteor(["the cat sat on the rug"], ["the cat sat on the carpet"])  # rug ~ carpet in WordNet
    different = meteor(["the cat sat on the rug"], ["the cat sat on the xylophone"])
    assert same > 0.99 and synonym > different


def test_meteor_unavailable_names_the_fix(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(scores, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    reason = meteor_status()
    assert reason and "wordnet-base" in reason and "\n" not in reason
    assert meteor(["a"], ["a"]) is None


def test_intent_f1_compares_free_gold_labels_in_normal_form():
    predicted = [["request_late_check_out"], ["inform_request_alts", "goodbye"]]
    gold = [["Request late check-out"], ["inform_request_alts"]]
    result = intent_scores(predicted, gold)
    assert result["intent_precision"] == pytest.approx(2 / 3) and result["intent_recall"] == pytest.approx(1.0)
