"""Predicted intents for `igft evaluate --pred`: igft's labels.csv or the paper's GIFA output.

Two layouts are recognised from the header:

- **labels.csv** (what `igft label` writes): columns `conversation_number`, `index`, `intent`
  (`conversation` may be there too and is ignored). Keys are taken as they are.
- **the paper's GIFA output**: columns `index`, `intent`, `count`, `messages`; rows are grouped per
  conversation in file order and `count` restarts at 0 for each conversation, but the conversation
  number is not written. Alignment (`align_gifa_output`):
  1. split the rows into blocks at every `count == 0`;
  2. match each block, in file order: when it is verbatim the next unused gold conversation (texts
     and positions), take that one; otherwise, among the unused conversations that contain one of the
     block's three rarest texts, take the one sharing the most texts with it (as multisets), then the
     most texts at the same positions, then the first at or after the previously matched
     conversation (file order wraps around); a block with no candidate is skipped and counted;
  3. inside the matched conversation, a row's text must equal the gold message's text (role prefix
     and whitespace normalised); it goes to the gold message at position `count` when the texts
     agree there, else to the nearest not-yet-used position with the same text; rows whose text
     appears nowhere in that conversation are left out and counted in `unaligned_rows`.
  On the paper's artifacts every one of the 26 blocks matches its conversation exactly (239 rows).

`paper_merge` reproduces the paper's own evaluation join instead (inner join of gold and predicted
rows on text + index; duplicate texts at the same index in different conversations create extra
rows: 245 rows for 239 messages on the toy data). It exists to reproduce published figures only.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from igft.data import DataError, Dataset, is_missing, parse_whole_number, read_text, split_role

logger = logging.getLogger(__name__)

GIFA_COLUMNS = ("index", "intent", "count", "messages")
LABEL_COLUMNS = ("conversation_number", "index", "intent")
_SPACES = re.compile(r"\s+")


@dataclass
class GifaAlignment:
    """Labels aligned to gold keys, and what could not be aligned."""

    labels: dict[tuple[int, int], str]
    matched: list[tuple[int, int]] = field(default_factory=list)      # (block number, gold conversation)
    unmatched_blocks: list[int] = field(default_factory=list)
    unaligned_rows: int = 0


def _normalise(line: str) -> str:
    parsed = split_role(line)
    role, text = parsed if parsed else ("", str(line))
    return role + ":" + _SPACES.sub(" ", text).strip()


def _read_frame(path: Path) -> pd.DataFrame:
    import io

    text = read_text(path)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: unreadable CSV ({str(exc).strip().splitlines()[0]}); check the quoting") from None


def align_gifa_output(frame: pd.DataFrame, gold: Dataset, source: str = "<gifa output>") -> GifaAlignment:
    """Align the paper's GIFA output rows to gold message keys (see the module docstring)."""
    missing = [c for c in GIFA_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: line 1, column {missing[0]!r}: missing; the paper's GIFA output has columns {','.join(GIFA_COLUMNS)}")
    counts = [parse_whole_number(v, source, f"line {i + 2}", "count", "position (count)") for i, v in enumerate(frame["count"])]
    texts, intents = frame["messages"].tolist(), frame["intent"].tolist()  # (per-row pandas access is slow)
    blocks: list[list[int]] = []
    for row, count in enumerate(counts):
        if count == 0 or not blocks:
            blocks.append([])
        blocks[-1].append(row)
    gold_lines = {c.number: [_normalise(m.line) for m in c.messages] for c in gold.conversations}
    gold_order = gold.numbers
    position_of = {n: i for i, n in enumerate(gold_order)}
    by_number = {c.number: c for c in gold.conversations}
    conversations_with: dict[str, list[int]] = {}
    for number, lines in gold_lines.items():
        for line in set(lines):
            conversations_with.setdefault(line, []).append(number)
    result = GifaAlignment(labels={})
    used: set[int] = set()
    cursor = 0  # position in gold_order after the last matched conversation
    for b, rows in enumerate(blocks):
        lines = [_normalise(texts[r]) for r in rows]
        best, best_key = None, None
        while cursor < len(gold_order) and gold_order[cursor] in used:
            cursor += 1
        expected = gold_order[cursor] if cursor < len(gold_order) else None
        if expected is not None and gold_lines[expected] == lines and [counts[r] for r in rows] == list(range(len(rows))):
            candidates = {expected}  # the usual case: the next conversation, verbatim
        else:
            # candidates share one of the block's rarest texts (inverted index; never a scan of all
            # conversations, and common lines such as "customer: Thanks!" do not flood the search)
            rarest = sorted(set(lines), key=lambda line: len(conversations_with.get(line, ())))[:3]
            candidates = {n for line in rarest for n in conversations_with.get(line, ()) if n not in used}
        for number in candidates:
            target = gold_lines[number]
            shared = sum((Counter(lines) & Counter(target)).values())
            agree = sum(1 for r, line in zip(rows, lines) if counts[r] < len(target) and target[counts[r]] == line)
            key = (shared, agree, -((position_of[number] - cursor) % len(gold_order)))
            if best_key is None or key > best_key:
                best, best_key = number, key
        if best is None:
            result.unmatched_blocks.append(b)
            result.unaligned_rows += len(rows)
            continue
        used.add(best)
        result.matched.append((b, best))
        cursor = position_of[best] + 1
        target = gold_lines[best]
        messages = by_number[best].messages
        taken: set[int] = set()
        for r, line in zip(rows, lines):
            position = counts[r]
            if position < len(target) and target[position] == line and position not in taken:
                choice = position
            else:
                same_text = [i for i, g in enumerate(target) if g == line and i not in taken]
                if not same_text:
                    result.unaligned_rows += 1
                    continue
                choice = min(same_text, key=lambda i: abs(i - position))
            taken.add(choice)
            intent = intents[r]
            if not is_missing(intent):
                result.labels[messages[choice].key] = str(intent).strip()
    if result.unmatched_blocks or result.unaligned_rows:
        logger.warning("%s: %d block(s) matched no gold conversation, %d row(s) not aligned",
                       source, len(result.unmatched_blocks), result.unaligned_rows)
    return result


def _labels_csv(frame: pd.DataFrame, source: str) -> dict[tuple[int, int], str]:
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: line 1, column {missing[0]!r}: missing; predictions need columns "
                        f"{','.join(LABEL_COLUMNS)} (igft's labels.csv) or {','.join(GIFA_COLUMNS)} (the paper's GIFA output)")
    labels: dict[tuple[int, int], str] = {}
    first: dict[tuple[int, int], int] = {}
    for i, (conv, idx, intent) in enumerate(zip(frame["conversation_number"], frame["index"], frame["intent"])):
        where = f"line {i + 2}"
        key = (parse_whole_number(conv, source, where, "conversation_number", "conversation number"),
               parse_whole_number(idx, source, where, "index", "message position (index)"))
        if key in first:
            raise DataError(f"{source}: {where}, column 'index': duplicate prediction for (conversation {key[0]}, "
                            f"index {key[1]}), first on line {first[key]}; keep one row per message")
        first[key] = i + 2
        if not is_missing(intent):  # an empty intent = no prediction (the message counts as a singleton)
            labels[key] = str(intent).strip()
    return labels


def is_gifa_output(frame: pd.DataFrame) -> bool:
    return all(c in frame.columns for c in GIFA_COLUMNS) and "conversation_number" not in frame.columns


def load_predictions(path: str | Path, gold: Dataset) -> dict[tuple[int, int], str]:
    """{(conversation_number, index): intent} from labels.csv or the paper's GIFA output."""
    path = Path(path)
    frame = _read_frame(path)
    if frame.empty:
        raise DataError(f"{path}: line 2: no predictions under the header; the file has no rows")
    if is_gifa_output(frame):
        return align_gifa_output(frame, gold, str(path)).labels
    return _labels_csv(frame, str(path))


def paper_merge(gold_path: str | Path, pred_path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(gold, pred, texts) as the paper's notebook builds them: inner join on text + index.

    Only for reproducing published figures; duplicate text+index pairs are counted once per match.
    """
    gold_frame = _read_frame(Path(gold_path))
    pred_frame = _read_frame(Path(pred_path))
    if not is_gifa_output(pred_frame):
        raise DataError(f"{pred_path}: --align paper-merge needs the paper's GIFA output (columns {','.join(GIFA_COLUMNS)})")
    pred_frame = pred_frame[list(GIFA_COLUMNS)].rename(columns={"messages": "message"})
    merged = gold_frame.merge(pred_frame, left_on=["conversation", "index"], right_on=["message", "index"],
                              how="inner", suffixes=("_true", "_predicted"))
    merged = merged[merged["intent_predicted"].str.strip() != ""]
    return (merged["intent_true"].tolist(), merged["intent_predicted"].tolist(), merged["conversation"].tolist())
