"""Markdown table of an offline_labeler_eval.sh run: one row per (labeler, data) from its files.

    python benchmarks/offline_labeler_table.py runs/ol_eval

Reads NAME.eval.json (igft evaluate --json), NAME/stats.json (the label run) and NAME.wall.json (the
whole `igft label` command). messages/s = messages / the label run's own `seconds` (model loading
and embedding excluded), and per whole command beside it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(folder: Path) -> list[dict]:
    out = []
    for ev in sorted(folder.glob("*.eval.json")):
        name = ev.name[: -len(".eval.json")]
        metrics = json.loads(ev.read_text())
        stats = json.loads((folder / name / "stats.json").read_text())
        wall = json.loads((folder / f"{name}.wall.json").read_text())["wall_s"]
        n = metrics["n_messages"]
        out.append({"name": name, "messages": n, "AMI_x_NCA": metrics["AMI_x_NCA"], "AMI": metrics["AMI"],
                    "NCA": metrics["NCA"], "coverage": metrics["coverage"], "pred": metrics["n_pred_intents"],
                    "gold": metrics["n_gold_intents"], "acc": metrics["accuracy_hungarian"],
                    "failures": stats.get("failures", 0), "retries": stats.get("retries", 0),
                    "mps": n / stats["seconds"] if stats.get("seconds") else float("nan"), "mps_wall": n / wall})
    return out


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "runs/ol_eval")
    print("| run | messages | AMI x NCA | AMI | NCA | coverage | intents found (gold) | Hungarian ACC | "
          "failed conv. | retries | messages/s (label run / whole command) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows(folder):
        print(f"| {r['name']} | {r['messages']} | {r['AMI_x_NCA']:.3f} | {r['AMI']:.3f} | {r['NCA']:.3f} | "
              f"{r['coverage']:.2f} | {r['pred']} ({r['gold']}) | {r['acc']:.3f} | {r['failures']} | {r['retries']} | "
              f"{r['mps']:.2f} / {r['mps_wall']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
