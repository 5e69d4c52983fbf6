"""A real 2-process `accelerate launch` on CPU (torch.distributed over gloo) of `igft finetune`.

`--multi_gpu` selects accelerate's torchrun launcher; on a machine without CUDA the Trainer
(`use_cpu=True`) joins the processes with the gloo backend. Checks: both ranks trained together
(world size 2), one adapter is written, the loss falls, and logs/prints come from rank 0 only.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.tiny_models import tiny_model

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_launch(tmp_path):
    launcher = shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate's launcher is not on PATH")
    out = tmp_path / "run"
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "igft", "finetune", "--model", str(tiny_model("llama")), "--max-conversations", "4",
           "--max-steps", "4", "--batch-size", "2", "--max-seq-len", "192", "--val-fraction", "0", "--eval-steps", "0",
           "--save-steps", "100", "--learning-rate", "1e-2", "--warmup-ratio", "0", "--out", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("adapter: ") == 1, proc.stdout  # rank 0 prints, rank 1 is quiet
    assert proc.stderr.count("longer than max_seq_len") <= 1  # igft's own warning: rank 0 only
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 2
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4]  # one line per step: the log is written by rank 0 only
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0], losses
