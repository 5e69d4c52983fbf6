"""Every malformed input ends with ONE line naming the file, line and column, and exit code 2 from the CLI."""
import json
import subprocess
import sys

import pytest

from igft.cli import main
from igft.data import DataError, load_conversations

HEADER = "conversation_number,conversation,index,intent\n"
GOOD = HEADER + '0,"customer: Hi, my order is late.",0,report_late_order\n0,"assistant: Sorry! What is the order number?",1,ask_order_number\n'


def jsonl(*records):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


OK_MESSAGES = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]

# (file name, content (str or bytes), fragments the one-line error must contain)
MALFORMED = {
    "missing_column": ("a.csv", "conversation_number,conversation,intent\n0,customer: Hi,greeting\n",
                       ["line 1", "column 'index'", "header must be"]),
    "unknown_role_prefix": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,bot: Hello,1,greeting\n",
                            ["line 3", "column 'conversation'", "unknown role prefix 'bot:'", "'customer:' or 'assistant:'"]),
    "no_role_prefix": ("a.csv", HEADER + "0,Hello there,0,greeting\n", ["line 2", "column 'conversation'", "no role prefix"]),
    "empty_text": ("a.csv", HEADER + '0,customer: Hi,0,greeting\n0,"",1,greeting\n',
                   ["line 3", "column 'conversation'", "empty message"]),
    "empty_text_after_prefix": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant:   ,1,greeting\n",
                                ["line 3", "column 'conversation'", "empty message text after 'assistant:'"]),
    "nan_in_required_column": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant: Hello,,greeting\n",
                               ["line 3", "column 'index'", "empty value"]),
    "nan_literal_id": ("a.csv", HEADER + "NaN,customer: Hi,0,greeting\n",
                       ["line 2", "column 'conversation_number'", "'NaN' is not an integer"]),
    "duplicate_ids": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant: Hello,0,greeting\n",
                      ["line 3", "column 'index'", "duplicate message (conversation 0, index 0)", "first on line 2"]),
    "non_integer_id": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant: Hello,1a,greeting\n",
                       ["line 3", "column 'index'", "'1a' is not an integer"]),
    "fractional_conversation_number": ("a.csv", HEADER + "2.5,customer: Hi,0,greeting\n",
                                       ["line 2", "column 'conversation_number'", "not an integer"]),
    "empty_file": ("a.csv", "", ["line 1", "the file is empty"]),
    "whitespace_only_file": ("a.csv", "\n  \n", ["line 1", "the file is empty"]),
    "header_only": ("a.csv", HEADER, ["line 1", "no messages"]),
    "wrong_encoding": ("a.csv", (HEADER + "0,customer: Hi,0,greeting\n0,assistant: Caf\u00e9 is open,1,greeting\n").encode("latin-1"),
                       ["line 3", "not UTF-8", "re-save the file as UTF-8"]),
    "negative_index": ("a.csv", HEADER + "0,customer: Hi,-1,greeting\n", ["line 2", "column 'index'", "negative index -1"]),
    "index_gap": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant: Hello,2,greeting\n",
                  ["line 3", "column 'index'", "has no index 1", "without gaps"]),
    "index_starts_at_one": ("a.csv", HEADER + "0,customer: Hi,1,greeting\n0,assistant: Hello,2,greeting\n",
                            ["line 2", "column 'index'", "does not start at index 0"]),
    "synthetic_not_a_flag": ("a.csv", "conversation_number,conversation,index,synthetic\n0,customer: Hi,0,maybe\n",
                             ["line 2", "column 'synthetic'", "'maybe' is not 0 or 1"]),
    "intent_empty_in_some_rows": ("a.csv", HEADER + "0,customer: Hi,0,greeting\n0,assistant: Hello,1,\n",
                                  ["line 3", "column 'intent'", "empty intent"]),
    "unquoted_comma": ("a.csv", HEADER + "0,customer: Hi, there,0,greeting\n", ["line 2", "5 fields", "quote texts"]),
    "line_after_multiline_field": ("a.csv", HEADER + '0,"customer: Hi,\nsecond line",0,greeting\n0,agentx: Hello,1,greeting\n',
                                   ["line 4", "column 'conversation'", "'agentx:'"]),
    "jsonl_malformed_line": ("a.jsonl", jsonl({"messages": OK_MESSAGES}, '{"messages": [}'),
                             ["line 2", "not valid JSON", "one JSON object per line"]),
    "jsonl_not_an_object": ("a.jsonl", jsonl([1, 2]), ["line 1", "not an object"]),
    "jsonl_missing_messages": ("a.jsonl", jsonl({"messages": OK_MESSAGES}, {"conversation": []}),
                               ["line 2", "field 'messages'", "missing"]),
    "jsonl_unknown_role": ("a.jsonl", jsonl({"messages": [OK_MESSAGES[0], {"role": "robot", "content": "beep"}]}),
                           ["line 1", "field 'messages[1].role'", "unknown role 'robot'"]),
    "jsonl_empty_content": ("a.jsonl", jsonl({"messages": [{"role": "user", "content": ""}, OK_MESSAGES[1]]}),
                            ["line 1", "field 'messages[0].content'", "empty message"]),
    "jsonl_duplicate_conversation": ("a.jsonl", jsonl({"conversation_number": 3, "messages": OK_MESSAGES},
                                                      {"conversation_number": 3, "messages": OK_MESSAGES}),
                                     ["line 2", "duplicate conversation 3", "first on line 1"]),
    "jsonl_intent_in_some_messages": ("a.jsonl", jsonl({"messages": [dict(OK_MESSAGES[0], intent="Say Hi"), OK_MESSAGES[1]]}),
                                      ["line 1", "field 'messages[1].intent'", "empty intent"]),
}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_one_line_and_exit_2(case, tmp_path, capsys):
    name, content, fragments = MALFORMED[case]
    bad = write(tmp_path, name, content)
    pred = write(tmp_path, "pred.csv", "conversation_number,index,intent\n0,0,x\n")
    with pytest.raises(DataError) as info:
        load_conversations(bad)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(bad))
    for fragment in fragments:
        assert fragment in message, (fragment, message)

    code = main(["evaluate", "--gold", str(bad), "--pred", str(pred)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


PRED_MALFORMED = {
    "missing_columns": ("conversation_number,label\n0,x\n", ["line 1", "column 'index'", "labels.csv"]),
    "duplicate_prediction": ("conversation_number,index,intent\n0,0,x\n0,0,y\n", ["line 3", "duplicate prediction", "first on line 2"]),
    "non_integer_key": ("conversation_number,index,intent\nzero,0,x\n", ["line 2", "column 'conversation_number'", "not an integer"]),
    "gifa_non_integer_count": ("index,intent,count,messages\n0,greet,zero,customer: Hi\n", ["line 2", "column 'count'", "not an integer"]),
    "empty_predictions": ("conversation_number,index,intent\n", ["no predictions"]),
}


@pytest.mark.parametrize("case", sorted(PRED_MALFORMED))
def test_malformed_predictions_one_line_and_exit_2(case, tmp_path, capsys):
    content, fragments = PRED_MALFORMED[case]
    gold = write(tmp_path, "gold.csv", GOOD)
    pred = write(tmp_path, "pred.csv", content)
    code = main(["evaluate", "--gold", str(gold), "--pred", str(pred)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(pred) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_gold_without_intents_is_refused(tmp_path, capsys):
    gold = write(tmp_path, "gold.csv", "conversation_number,conversation,index\n0,customer: Hi,0\n0,assistant: Hello,1\n")
    pred = write(tmp_path, "pred.csv", "conversation_number,index,intent\n0,0,x\n")
    assert main(["evaluate", "--gold", str(gold), "--pred", str(pred)]) == 2
    assert "no gold intents" in capsys.readouterr().err


def test_console_script_exit_code_and_single_line(tmp_path):
    bad = write(tmp_path, "bad.csv", HEADER + "0,customer: Hi,0,greeting\n0,bot: Hello,1,greeting\n")
    pred = write(tmp_path, "pred.csv", "conversation_number,index,intent\n0,0,x\n")
    done = subprocess.run([sys.executable, "-m", "igft", "evaluate", "--gold", str(bad), "--pred", str(pred)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.csv: line 3, column 'conversation'" in lines[0]


def test_valid_files_load(tmp_path):
    dataset = load_conversations(write(tmp_path, "good.csv", GOOD))
    assert dataset.n_messages == 2 and dataset.has_gold
    first, second = dataset.messages
    assert (first.role, first.text, first.intent, first.key) == ("customer", "Hi, my order is late.", "report_late_order", (0, 0))
    assert second.role == "assistant" and second.line == "assistant: Sorry! What is the order number?"
    # no intent column at all, BOM, CRLF line ends, rows out of order, role aliases, system messages in JSONL
    raw = "\ufeffconversation_number,conversation,index\r\n5,agent: Hello,1\r\n5,User: Hi,0\r\n"
    unlabeled = load_conversations(write(tmp_path, "u.csv", raw))
    assert not unlabeled.has_gold and [m.role for m in unlabeled.messages] == ["customer", "assistant"]
    records = jsonl({"messages": [{"role": "system", "content": "You are helpful"}] + OK_MESSAGES},
                    {"conversation_number": 9, "messages": OK_MESSAGES})
    from_jsonl = load_conversations(write(tmp_path, "c.jsonl", records))
    assert from_jsonl.numbers == [0, 9] and [m.index for m in from_jsonl.conversations[0].messages] == [0, 1]


def test_from_frame_validates_too():
    import pandas as pd

    from igft.data import Dataset

    frame = pd.DataFrame({"conversation_number": [0, 0], "conversation": ["customer: Hi", "robot: x"], "index": [0, 1]})
    with pytest.raises(DataError, match=r"<frame>: row 3, column 'conversation'"):
        Dataset.from_frame(frame)
    ok = Dataset.from_frame(frame.assign(conversation=["customer: Hi", "assistant: Hello"]))
    assert ok.n_messages == 2
