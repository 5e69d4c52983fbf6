"""Conversation datasets: the model, its readers and writers.

    igft.data.model       Message, Conversation, Dataset, DataError, roles (no file I/O)
    igft.data.validation  the rules every reader applies (one-line DataError per problem)
    igft.data.readers     CSV / JSONL / DataFrame -> Dataset
    igft.data.writers     Dataset -> CSV / JSONL

Dependencies run one way: validation -> model, readers -> validation + model, writers -> model.
Every name below can be imported from `igft.data` directly.
"""
from igft.data.model import (REQUIRED_COLUMNS, ROLE_ALIASES, ROLES, Conversation, DataError, Dataset, Message,
                             split_role)
from igft.data.readers import dataset_from_frame, load_any, load_conversations, load_csv, load_jsonl, read_text
from igft.data.validation import is_missing, parse_whole_number
from igft.data.writers import dataset_to_frame, save_dataset, save_labeled

__all__ = ["REQUIRED_COLUMNS", "ROLE_ALIASES", "ROLES", "Conversation", "DataError", "Dataset", "Message",
           "split_role", "dataset_from_frame", "load_any", "load_conversations", "load_csv", "load_jsonl",
           "read_text", "is_missing", "parse_whole_number", "dataset_to_frame", "save_dataset", "save_labeled"]
