"""The issue's must-show: `igft label --labeler embeddings` and `igft evaluate` on a Schema-Guided Dialogue file,
whose gold labels are free strings (joined dialogue acts such as inform__request_alts)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from igft.cli import main

SGD_FILE = Path(__file__).resolve().parents[1] / ".." / "shared" / "external" / "sgd" / "dev" / "Restaurants_2.csv"


@pytest.mark.slow
@pytest.mark.skipif(not SGD_FILE.is_file(), reason="Schema-Guided Dialogue not in ../shared/external/sgd")
def test_embedding_labels_and_evaluate_on_sgd(tmp_path, capsys):
    out = tmp_path / "sgd"
    assert main(["label", "--labeler", "embeddings", "--data", str(SGD_FILE), "--out", str(out)]) == 0
    assert (out / "labels.csv").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--gold", str(SGD_FILE), "--pred", str(out / "labels.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_messages"] > 1000 and report["n_missing"] == 0
    assert report["n_gold_intents"] > 10 and 0.0 < report["AMI"] <= 1.0
