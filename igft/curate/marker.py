"""Include or exclude synthetic messages (rows whose `synthetic` column is 1), for Stage 2 and the classifiers.

A conversation left with no message is dropped; the kept messages keep their ids.
"""
from __future__ import annotations

from igft.data import Conversation, Dataset

SYNTHETIC_CHOICES = ("include", "exclude", "only")


def is_synthetic(message) -> bool:
    return bool(getattr(message, "synthetic", False))


def _keep(dataset: Dataset, want_synthetic: bool) -> Dataset:
    conversations = []
    for conversation in dataset.conversations:
        messages = tuple(m for m in conversation.messages if is_synthetic(m) == want_synthetic)
        if messages:
            conversations.append(Conversation(conversation.number, messages))
    return Dataset(conversations, dataset.source)


def exclude_synthetic(dataset: Dataset) -> Dataset:
    """The dataset without synthetic messages."""
    return _keep(dataset, False)


def only_synthetic(dataset: Dataset) -> Dataset:
    """Only the synthetic messages."""
    return _keep(dataset, True)


def select_synthetic_rows(frame, choice: str, source: str):
    """The rows of a classifier task frame kept by `--synthetic CHOICE` (its `synthetic` column is read
    with the conversation readers' 0/1 rule); one clear line when nothing is left."""
    from igft.curate.entities import CurateError
    from igft.data.validation import parse_flag

    if choice == "include":
        return frame
    if choice not in SYNTHETIC_CHOICES:
        raise CurateError(f"--synthetic must be one of {', '.join(SYNTHETIC_CHOICES)}, got {choice!r}")
    if "synthetic" not in frame.columns:
        if choice == "exclude":
            return frame  # nothing is marked synthetic
        raise CurateError(f"--synthetic only: {source} has no synthetic column; add one (1 = generated row) "
                          "or use --synthetic include")
    marked = [parse_flag(v, str(source), f"row {i + 2}", "synthetic") for i, v in enumerate(frame["synthetic"])]
    keep = [m == (choice == "only") for m in marked]
    kept = frame[keep].reset_index(drop=True)
    if kept.empty:
        raise CurateError(f"--synthetic {choice} leaves no rows in {source}; use --synthetic include")
    return kept


def select_synthetic(dataset: Dataset, choice: str = "include") -> Dataset:
    """'include' (as is), 'exclude' or 'only': the value of a `--synthetic` flag."""
    from igft.curate.entities import CurateError

    if choice == "include":
        return dataset
    if choice == "exclude":
        return exclude_synthetic(dataset)
    if choice == "only":
        return only_synthetic(dataset)
    raise CurateError(f"--synthetic must be one of {', '.join(SYNTHETIC_CHOICES)}, got {choice!r}")
