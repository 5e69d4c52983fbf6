"""The OpenAI fine-tuning workflow against a real HTTP server on 127.0.0.1 speaking the files and
fine-tuning-jobs wire format (multipart upload, job create / retrieve / events, file content) and chat
completions for evaluating the fine-tuned model id."""
from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from igft.classify.openai_ft import (FineTuneError, default_epochs, export_jsonl, plan_job, run_job, validate_jsonl)
from igft.classify.task import load_task
from igft.cli import main
from igft.resources import dummy_data_dir

TASK = dummy_data_dir() / "classify" / "hospitality_requests.csv"
FT_MODEL = "ft:gpt-4o-mini-2024-07-18:igft::abc123"


class FakeOpenAI:
    """State of the fake API: uploaded files, jobs whose status advances one step per retrieve."""

    def __init__(self):
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.memory: dict[str, str] = {}  # user text -> assistant answer, "learned" from uploaded files

    def handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload, raw: bytes | None = None):
                body = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/files":
                    return self._send(200, api.upload(self.headers["Content-Type"], body))
                data = json.loads(body)
                api.requests.append(("POST", self.path, data))
                if self.path == "/v1/fine_tuning/jobs":
                    status, payload = api.create_job(data)
                    return self._send(status, payload)
                if self.path == "/v1/chat/completions":
                    return self._send(200, api.chat(data))
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_GET(self):
                api.requests.append(("GET", self.path, None))
                path = self.path.split("?")[0]
                if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
                    return self._send(200, None, raw=api.files[m.group(1)]["content"])
                if m := re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)/events", path):
                    return self._send(200, {"object": "list", "data": api.jobs[m.group(1)]["events"][::-1], "has_more": False})
                if m := re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)", path):
                    return self._send(200, api.advance(m.group(1)))
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        return Handler

    def upload(self, content_type: str, body: bytes) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        content = fields["file"].get_payload(decode=True)
        purpose = fields["purpose"].get_payload(decode=True).decode()
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = {"content": content, "purpose": purpose, "filename": fields["file"].get_filename()}
        self.requests.append(("POST", "/v1/files", {"purpose": purpose, "filename": fields["file"].get_filename()}))
        for line in content.decode().splitlines():
            messages = json.loads(line)["messages"]
            self.memory[messages[-2]["content"]] = messages[-1]["content"]
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": fields["file"].get_filename(), "purpose": purpose, "status": "processed"}

    def create_job(self, data: dict):
        if data["training_file"] not in self.files:
            return 400, {"error": {"message": f"file {data['training_file']} not found", "type": "invalid_request_error"}}
        job_id = f"ftjob-{len(self.jobs) + 1}"
        self.jobs[job_id] = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "model": data["model"],
                             "training_file": data["training_file"], "validation_file": data.get("validation_file"),
                             "hyperparameters": data.get("hyperparameters", {}), "status": "validating_files",
                             "fine_tuned_model": None, "finished_at": None, "result_files": [], "trained_tokens": None,
                             "organization_id": "org-test", "seed": data.get("seed", 0), "error": None,
                             "events": [self._event(1, "Validating training file")]}
        return 200, {k: v for k, v in self.jobs[job_id].items() if k != "events"}

    @staticmethod
    def _event(n: int, message: str) -> dict:
        return {"id": f"ftevent-{n}", "object": "fine_tuning.job.event", "created_at": 1700000000 + n,
                "level": "info", "message": message}

    def advance(self, job_id: str) -> dict:
        """Retrieve n: 1 -> validating_files, 2 -> running, 3 and later -> succeeded."""
        job = self.jobs[job_id]
        job["retrieves"] = job.get("retrieves", 0) + 1
        if job["retrieves"] == 2:
            job["status"] = "running"
            job["events"].append(self._event(2, "Fine-tuning job started"))
        elif job["retrieves"] == 3:
            self.files["file-result"] = {"content": b"step,train_loss\n1,1.20\n2,0.40\n", "purpose": "fine-tune-results"}
            job.update(status="succeeded", fine_tuned_model=FT_MODEL, result_files=["file-result"], trained_tokens=4242,
                       finished_at=int(time.time()))
            job["events"].append(self._event(3, "The job has successfully completed"))
        return {k: v for k, v in job.items() if k not in ("events", "retrieves")}

    def chat(self, data: dict) -> dict:
        user = data["messages"][-1]["content"]
        answer = self.memory.get(user, '{"intent": "late_checkout"}')
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": data["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@pytest.fixture
def fake_api():
    api = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def exported(tmp_path):
    task = load_task(TASK)
    return task, export_jsonl(task, task.split(seed=0), tmp_path / "export")


def test_export_is_valid_chat_jsonl(exported):
    task, paths = exported
    report = validate_jsonl(paths["train"])
    assert report.ok and report.n_examples == len(task.split(seed=0)["train"])
    first = json.loads(paths["train"].read_text().splitlines()[0])
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert json.loads(first["messages"][-1]["content"])["intent"] in task.fields[0].labels


def test_validation_names_the_broken_line(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{}"}]}
    lines = [json.dumps(good)] * 12 + [json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
                                       json.dumps({"messages": [{"role": "user", "content": "only a question"}]}), "{oops"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = validate_jsonl(path)
    assert report.n_examples == 12 and len(report.errors) == 3
    assert "line 13: role must be" in report.errors[0]
    assert "line 14: the last message must be the assistant" in report.errors[1]
    assert "line 15: not JSON" in report.errors[2]
    with pytest.raises(FineTuneError, match="line 13"):
        plan_job(path)


def test_plan_estimates_cost_from_tokens_and_epochs(exported):
    _, paths = exported
    plan = plan_job(paths["train"], paths["validation"], model="gpt-4o-mini-2024-07-18")
    assert plan.n_epochs == default_epochs(plan.n_train) == 3
    assert plan.billed_tokens == plan.train_tokens * 3
    assert plan.estimated_usd == pytest.approx(plan.billed_tokens * 3.00 / 1e6)
    assert default_epochs(20) == 5 and default_epochs(20000) == 1
    with pytest.raises(FineTuneError, match="--price-per-million"):
        plan_job(paths["train"], model="my-own-model")


def test_job_runs_against_local_server_and_resumes(exported, fake_api, tmp_path):
    _, paths = exported
    plan = plan_job(paths["train"], paths["validation"])
    seen = []
    state = run_job(plan, tmp_path / "job", base_url=fake_api.base_url, poll_interval=0, suffix="hotel",
                    on_status=lambda s: seen.append(s["status"]))
    assert state["status"] == "succeeded" and state["fine_tuned_model"] == FT_MODEL
    assert seen == ["validating_files", "running", "succeeded"]
    uploads = [r for r in fake_api.requests if r[1] == "/v1/files"]
    assert [u[2]["purpose"] for u in uploads] == ["fine-tune", "fine-tune"]
    assert fake_api.files["file-1"]["content"] == paths["train"].read_bytes()
    create = next(r[2] for r in fake_api.requests if r[1] == "/v1/fine_tuning/jobs")
    assert create["training_file"] == "file-1" and create["validation_file"] == "file-2"
    assert create["hyperparameters"] == {"n_epochs": plan.n_epochs} and create["suffix"] == "hotel"
    events = [json.loads(x)["message"] for x in (tmp_path / "job" / "events.jsonl").read_text().splitlines()]
    assert events == ["Validating training file", "Fine-tuning job started", "The job has successfully completed"]
    assert (tmp_path / "job" / "result_file-result.csv").read_text().startswith("step,train_loss")
    # a rerun resumes from job.json: no second upload, no second job
    n_requests = len(fake_api.requests)
    run_job(plan, tmp_path / "job", base_url=fake_api.base_url, poll_interval=0)
    new = fake_api.requests[n_requests:]
    assert not any(r[0] == "POST" for r in new) and len(fake_api.jobs) == 1


def test_unreachable_server_keeps_state_and_says_how_to_resume(exported, tmp_path):
    _, paths = exported
    with pytest.raises(FineTuneError, match="rerun to resume"):
        run_job(plan_job(paths["train"]), tmp_path / "job", base_url="http://127.0.0.1:9/v1", poll_interval=0)
    assert (tmp_path / "job" / "job.json").is_file()


def test_cli_dry_run_then_job_then_eval_of_fine_tuned_model(exported, fake_api, tmp_path, capsys):
    _, paths = exported
    assert main(["classify", "openai-job", "--train", str(paths["train"]), "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "estimated" in out and "$" in out and "dry run: nothing uploaded" in out
    assert not fake_api.requests and not (tmp_path / "dry" / "job.json").exists()
    assert main(["classify", "openai-job", "--train", str(paths["train"]), "--validation", str(paths["validation"]),
                 "--out", str(tmp_path / "job"), "--base-url", fake_api.base_url, "--poll-interval", "0",
                 "--eval-task", str(TASK)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-2])["fine_tuned_model"] == FT_MODEL
    scores = json.loads(lines[-1])
    assert set(scores) >= {"accuracy", "macro_f1", "per_field"} and scores["n"] == 46
    chats = [r[2] for r in fake_api.requests if r[1] == "/v1/chat/completions"]
    assert len(chats) == 46 and {c["model"] for c in chats} == {FT_MODEL}
    # the fine-tuned model is asked with exactly the system prompt it was trained on
    trained_system = json.loads(paths["train"].read_text().splitlines()[0])["messages"][0]["content"]
    assert chats[0]["messages"][0]["content"] == trained_system
