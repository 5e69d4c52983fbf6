"""GPU check: the CUDA paths of Stage 2 and the LLM classifiers, end to end, with the bundled models only.

    python benchmarks/gpu_check.py [--out runs/gpu_check.json] [--sft-steps 30] [--classifier-steps 20]

Parts (each pass/fail with its figures, wall time and peak GPU memory):
  sft_response, sft_intent_response   QLoRA (4-bit NF4) SFT of SmolLM2-135M on the toy conversations
  generation                          replies of the intent+response adapter (vLLM when installed, else HF), tokens/s
  head_4bit, generative_4bit          the two LLM classifiers in 4-bit on the toy hospitality task
A part passes when it runs and its check holds (loss falls; every output parses). Sized for under
10 minutes on one GPU. Without a CUDA device it prints one line saying so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def sft_part(fmt: str, steps: int, work: Path) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from igft.finetune.config import FinetuneConfig
        from igft.finetune.train import train

        cfg = FinetuneConfig(model="smollm2", format=fmt, quantize="4bit", max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=2e-4, max_seq_len=512, val_fraction=0.1, eval_steps=max(1, steps // 3),
                             save_steps=steps, logging_steps=1, output_dir=str(work / f"sft_{fmt}"), resume=False)
        result = train(cfg)
        losses = [r["loss"] for r in result.log if "loss" in r]
        head, tail = sum(losses[:5]) / len(losses[:5]), sum(losses[-5:]) / len(losses[-5:])
        return {"passed": tail < head, "steps": len(losses), "loss_first5": head, "loss_last5": tail,
                "eval_loss": result.metrics.get("eval_loss"),
                "adapter": str(result.adapter_dir)}
    return run


def generation_part(work: Path, max_samples: int) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from igft.data import load_conversations
        from igft.finetune.generate import GenerationSettings, evaluation_samples, generate_predictions, vllm_available
        from igft.resources import toy_conversations_path

        backend = "vllm" if vllm_available() else "hf"
        samples = evaluation_samples(load_conversations(toy_conversations_path()), "intent+response",
                                     max_samples=max_samples)
        stats: dict[str, float] = {}
        records = generate_predictions(samples, work / "predictions.jsonl", adapter=work / "sft_intent+response" / "adapter",
                                       backend=backend, settings=GenerationSettings(max_new_tokens=96, batch_size=16),
                                       stats=stats, progress=False)
        return {"passed": len(records) == len(samples), "backend": backend, "n": len(records),
                "malformed_share": sum(r["malformed"] for r in records) / max(1, len(records)),
                "new_tokens": stats.get("new_tokens"), "tokens_per_s": stats.get("tokens_per_s")}
    return run


def classifier_part(method: str, steps: int, work: Path) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from igft.classify.evaluate import score_predictions
        from igft.classify.run import train_classifier
        from igft.classify.task import load_task
        from igft.resources import dummy_data_dir

        task = load_task(dummy_data_dir() / "classify" / "hospitality_requests.csv")
        options = {"quantize": "4bit", "max_steps": steps, "batch_size": 8, "eval_steps": max(1, steps // 2),
                   "checkpoint_dir": str(work / f"{method}_ck"), "resume": False}
        clf, stats = train_classifier(task, method, options=options, seed=0)
        test = task.split()["test"]
        preds = clf.predict(task.texts(test))
        labels = set(task.fields[0].labels)
        scores = score_predictions(task.schema, task.targets(test), preds)
        return {"passed": all(p["intent"] in labels for p in preds) and stats["steps"] == steps,
                "steps": stats["steps"], "first_loss": stats["first_loss"], "last_loss": stats["last_loss"],
                "test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"], "n_test": len(preds)}
    return run


def run_part(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - a failing part is reported, the others still run
        result = {"passed": False, "error": f"{exc.__class__.__name__}: {exc}".splitlines()[0][:300],
                  "traceback": traceback.format_exc()[-2000:]}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    status = "PASS" if result["passed"] else "FAIL"
    print(f"{status} {name}: {json.dumps({k: v for k, v in result.items() if k != 'traceback'})}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu_check.json", help="JSON report (default: runs/gpu_check.json)")
    parser.add_argument("--sft-steps", type=int, default=30)
    parser.add_argument("--classifier-steps", type=int, default=20)
    parser.add_argument("--max-samples", type=int, default=64, help="generation samples (default: 64)")
    args = parser.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device found; nothing was run (this check needs a CUDA GPU)")
        return 0
    from igft.finetune.model_loading import cuda_capability, half_dtype

    capability = cuda_capability()
    device = {"name": torch.cuda.get_device_name(0), "capability": list(capability), "half_dtype": half_dtype(capability),
              "torch": torch.__version__, "cuda": torch.version.cuda}
    print(f"gpu_check on {device['name']} (compute capability {capability[0]}.{capability[1]}, {device['half_dtype']})")
    with tempfile.TemporaryDirectory(prefix="igft-gpu-check-") as tmp:
        work = Path(tmp)
        parts = {"sft_response": sft_part("response", args.sft_steps, work),
                 "sft_intent_response": sft_part("intent+response", args.sft_steps, work),
                 "generation": generation_part(work, args.max_samples),
                 "head_4bit": classifier_part("head", args.classifier_steps, work),
                 "generative_4bit": classifier_part("generative", args.classifier_steps, work)}
        results = {name: run_part(name, fn) for name, fn in parts.items()}
    report = {"device": device, "parts": results, "passed": all(r["passed"] for r in results.values())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"{'all parts passed' if report['passed'] else 'some parts FAILED'}; report: {out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
