"""The two public-data benchmarks in their --quick form (CI): they run, print their tables, and the
tables hold what they claim. Skipped when ../shared/external (public data, never shipped) is absent."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXTERNAL = Path(os.environ.get("IGFT_EXTERNAL_DATA", REPO.parent / "shared" / "external"))


def run_script(args: list[str], tmp_path: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell}")]


@pytest.mark.slow
def test_clinc150_quick_prints_every_method(tmp_path, capsys):
    if not (EXTERNAL / "clinc150" / "data_full.json").is_file():
        pytest.skip(f"{EXTERNAL}/clinc150 is absent (public data, not shipped)")
    out = run_script([str(REPO / "benchmarks" / "classifiers.py"), "--task", "clinc150", "--quick"], tmp_path)
    with capsys.disabled():
        print("\n" + out)
    rows = {r[0]: r for r in (table_rows(out, m)[0] for m in ("tfidf", "embeddings", "encoder", "head", "generative", "prompt"))}
    assert len(rows) == 6
    for method, cells in rows.items():
        accuracy, macro_f1 = float(cells[3]), float(cells[4])
        assert 0.0 <= accuracy <= 1.0 and 0.0 <= macro_f1 <= 1.0
        assert ("BUDGET" in cells[-1]) == (method in ("head", "generative", "prompt"))  # the table says what was cut
    # the threshold applies to methods with probabilities only
    assert rows["tfidf"][5] != "n/a" and rows["prompt"][5] == "n/a"
    assert rows["head"][5] != "n/a"  # the head's softmax feeds the threshold (generative's is skipped in --quick: cost)
    # 10 intents, 5 test rows each: TF-IDF trained on 10 rows per intent is far above chance (0.1)
    assert float(rows["tfidf"][3]) > 0.5
    assert "in-scope accuracy 0.962" in out


@pytest.mark.slow
def test_stage2_claim_quick_prints_rows_and_intervals(tmp_path, capsys):
    if not (EXTERNAL / "sgd" / "train").is_dir():
        pytest.skip(f"{EXTERNAL}/sgd is absent (public data, not shipped)")
    out = run_script([str(REPO / "benchmarks" / "stage2_claim.py"), "--quick", "--out", str(tmp_path / "run")], tmp_path)
    with capsys.disabled():
        print("\n" + out)
    for row in ("base", "response-only", "intent+response", "oracle (gold intents)"):
        assert len(table_rows(out, row)) == 1, row
    for metric in ("bleu", "rougeL", "bertscore_f1", "embedding_cosine"):
        (cells,) = table_rows(out, metric)
        point, low, high = map(float, re.findall(r"[-+]\d+\.\d+", cells[1]))
        assert low <= high and abs(point) < 100  # an interval of a difference of scores on a 0-100 scale
    assert len(table_rows(out, "f1")) == 1 and "Finding" in out
    assert (tmp_path / "run" / "summary.json").is_file()
    # the dev services scored are the ones training never saw
    train = {p.stem for p in (EXTERNAL / "sgd" / "train").glob("*.csv")}
    scored = re.search(r"unseen dev services \(([^)]*)\)", out).group(1).split(", ")
    assert scored and not set(scored) & train
