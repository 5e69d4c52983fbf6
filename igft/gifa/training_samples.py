"""Training samples for an offline GIFA labeler: GIFA's own prompts, with the gold labels as answers.

A small open model can learn Stage 1 itself when it is trained on exactly the requests GIFA sends at
labeling time. So each sample is built by GIFA's prompt builder (igft.gifa.prompts) from the state a
GIFA run would have reached had every earlier conversation been labeled with its gold intents: the
same intent catalog and retrieval index (igft.gifa.catalog), queried with the same top_k / method /
top_n, and the same instruction, output protocol and worked example. The target is the answer GIFA's
parser expects: `N. intent` lines, the gold labels normalised to snake_case by the parser's own
`normalize_name` (SGD's joined acts `inform__request_alts` -> `inform_request_alts`), and those
normalised names are what enters the catalog, as a GIFA run would store predictions.

Long conversations can be cut into windows of consecutive messages (`window_messages`), so that
samples stay short on CPU; each window is sent as its own conversation (numbered from 1, retrieval
over its own messages), which is exactly the request GIFA would send for a conversation made of those
messages. The catalog advances once per whole conversation, after all its windows.

Each source dataset (one SGD service file, the toy CSV ...) is its own labeling run with its own
state: GIFA labels one dataset at a time. Validation holds out whole sources (services), never
conversations of a service seen in training.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from igft.data import Conversation, Dataset, load_conversations
from igft.errors import IgftError
from igft.gifa import GifaConfig
from igft.gifa.catalog import IntentCatalog, RetrievalIndex
from igft.gifa.parser import MAX_NAME_LENGTH, MAX_NAME_WORDS, normalize_name
from igft.gifa.prompts import KnownIntent, build_labeling_messages
from igft.llm.base import Embedder

logger = logging.getLogger(__name__)

SAMPLE_FIELDS = ("messages", "source", "conversation_number", "first_message", "n_messages", "gold")


class TrainingSampleError(IgftError):
    """Training samples cannot be built from this data or with these settings."""


@dataclass
class SampleConfig:
    """How labeler training samples are cut and split (GIFA's own settings come from a GifaConfig)."""

    window_messages: int | None = field(default=None, metadata={"help": "cut conversations longer than this into windows of consecutive messages (None = whole conversations)"})
    window_stride: int | None = field(default=None, metadata={"help": "messages between window starts (None = window_messages, no overlap)"})
    max_conversations_per_source: int | None = field(default=None, metadata={"help": "label only the first N conversations of each source (GIFA's order), for short runs"})
    validation_sources: tuple[str, ...] = field(default=(), metadata={"help": "source names (e.g. SGD services) held out whole for validation"})
    validation_fraction: float = field(default=0.0, metadata={"help": "when no validation_sources are named: this fraction of the sources, drawn with seed"})
    seed: int = field(default=0, metadata={"help": "seed of the drawn validation sources"})

    def validate(self) -> "SampleConfig":
        if self.window_messages is not None and (not isinstance(self.window_messages, int) or self.window_messages < 1):
            raise TrainingSampleError(f"window_messages must be None or an integer >= 1, got {self.window_messages!r}")
        if self.window_stride is not None and (not isinstance(self.window_stride, int) or self.window_stride < 1):
            raise TrainingSampleError(f"window_stride must be None or an integer >= 1, got {self.window_stride!r}")
        if self.window_stride is not None and self.window_messages is None:
            raise TrainingSampleError("window_stride needs window_messages; set both or neither")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise TrainingSampleError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        return self

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def target_intent(gold: str) -> str:
    """The snake_case intent GIFA's parser would accept for this gold label.

    `normalize_name` first (the parser's own normaliser). SGD joins up to four acts, which can exceed
    the parser's word / length limits; such a label is cut to its first MAX_NAME_WORDS words (and
    MAX_NAME_LENGTH characters) so the target is still a name GIFA can output.
    """
    name = normalize_name(str(gold))
    if name is not None:
        return name
    words = [w for w in str(gold).replace("-", " ").replace("/", " ").replace("_", " ").split() if w]
    while words:
        name = normalize_name(" ".join(words[:MAX_NAME_WORDS]))
        if name is not None and len(name) <= MAX_NAME_LENGTH:
            return name
        words = words[:-1]
    raise TrainingSampleError(f"gold intent {gold!r} cannot be written as a snake_case name; fix the label")


def format_target(intents: Sequence[str]) -> str:
    """The answer in GIFA's output protocol: `1. intent` lines."""
    return "\n".join(f"{i}. {name}" for i, name in enumerate(intents, start=1))


def message_windows(conversation: Conversation, size: int | None, stride: int | None = None) -> list[Conversation]:
    """Consecutive-message windows of a conversation, each a Conversation with the same number.

    Windows start every `stride` messages (default `size`: no overlap); the last window ends at the
    last message, so every message is in at least one window.
    """
    n = len(conversation.messages)
    if size is None or n <= size:
        return [conversation]
    step = stride or size
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [Conversation(conversation.number, conversation.messages[s:s + size]) for s in starts]


class GoldState:
    """GIFA's catalog + retrieval index, advanced with (normalised) gold labels instead of LM answers.

    Built exactly like the labeler's own state (IntentCatalog(max_examples=max(5, top_n)), a
    RetrievalIndex over every message's embedding with the run's seed and ann_threshold), queried the
    same way, so `known(conversation)` is the known-intent list GIFA would show at that point.
    """

    def __init__(self, dataset: Dataset, embeddings: Any, config: GifaConfig):
        self.config = config
        self.catalog = IntentCatalog(max_examples=max(5, config.top_n))
        self.index = RetrievalIndex(embeddings, [m.key for m in dataset.messages], seed=config.seed,
                                    ann_threshold=config.ann_threshold)

    def known(self, conversation: Conversation) -> list[KnownIntent]:
        names = self.index.known_intents([m.key for m in conversation.messages], self.config.top_k)
        return [KnownIntent(name, self.catalog[name].description,
                            tuple(self.catalog[name].examples[: self.config.top_n])) for name in names]

    def apply(self, conversation: Conversation, intents: Sequence[str]) -> None:
        for message, intent in zip(conversation.messages, intents):
            self.catalog.add(intent, message.text)
        self.index.add([m.key for m in conversation.messages], list(intents))


def embed_messages(dataset: Dataset, embedder: Embedder, batch_size: int = 256) -> Any:
    """Embeddings of every message as GIFA embeds them: the `role: text` line, in message order."""
    import numpy as np

    texts = [m.line for m in dataset.messages]
    chunks = [np.asarray(embedder.embed(texts[s:s + batch_size]), dtype=np.float32)
              for s in range(0, len(texts), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)


def source_samples(dataset: Dataset, embedder: Embedder, gifa: GifaConfig | None = None,
                   samples: SampleConfig | None = None, source: str | None = None) -> list[dict[str, Any]]:
    """Samples of one labeling run over `dataset` (in its order), one per conversation or window.

    Each sample: `messages` (GIFA's request messages + the assistant target), `source`,
    `conversation_number`, `first_message` (position of the window's first message), `n_messages`,
    `gold` (the normalised target intents).
    """
    gifa = (gifa or GifaConfig()).validate()
    if gifa.method == "general":
        raise TrainingSampleError("method 'general' shows LLM-written descriptions that gold data has not; "
                                  "use method 'name' or 'example' for training samples")
    cut = (samples or SampleConfig()).validate()
    if cut.max_conversations_per_source:
        dataset = dataset.head(cut.max_conversations_per_source)
    if not dataset.has_gold:
        raise TrainingSampleError(f"{dataset.source}: every message needs a gold intent to build labeler samples")
    name = source or Path(str(dataset.source)).stem
    state = GoldState(dataset, embed_messages(dataset, embedder, gifa.embed_batch_size), gifa)
    out = []
    for conversation in dataset.conversations:
        intents = [target_intent(m.intent) for m in conversation.messages]
        for window in message_windows(conversation, cut.window_messages, cut.window_stride):
            offset = conversation.messages.index(window.messages[0])
            prompt = build_labeling_messages(gifa.instruction, window, gifa.method, state.known(window),
                                             worked_example=gifa.worked_example)
            gold = intents[offset:offset + len(window.messages)]
            out.append({"messages": [dict(m) for m in prompt] + [{"role": "assistant", "content": format_target(gold)}],
                        "source": name, "conversation_number": conversation.number,
                        "first_message": window.messages[0].index, "n_messages": len(window.messages),
                        "gold": gold})
        # The whole conversation enters the catalog once, after its windows: the next conversation
        # sees what a GIFA run would have stored by then.
        state.apply(conversation, intents)
    return out


@dataclass
class LabelerSamples:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    stats: dict[str, Any]


def split_sources(names: Sequence[str], config: SampleConfig) -> tuple[list[str], list[str]]:
    """(train sources, validation sources): the named ones, or a seeded fraction of them."""
    unknown = sorted(set(config.validation_sources) - set(names))
    if unknown:
        raise TrainingSampleError(f"validation source(s) {unknown} are not among the inputs {sorted(names)}")
    if config.validation_sources:
        held = [n for n in names if n in set(config.validation_sources)]
    elif config.validation_fraction > 0 and len(names) >= 2:
        k = max(1, round(config.validation_fraction * len(names)))
        held = sorted(random.Random(config.seed).sample(sorted(names), k))
    else:
        held = []
    if held and len(held) == len(names):
        raise TrainingSampleError("every source is held out for validation; leave at least one for training")
    return [n for n in names if n not in held], held


def build_labeler_samples(datasets: dict[str, Dataset], embedder: Embedder, gifa: GifaConfig | None = None,
                          samples: SampleConfig | None = None) -> LabelerSamples:
    """Samples from several sources (name -> dataset), whole sources held out for validation."""
    config = (samples or SampleConfig()).validate()
    if not datasets:
        raise TrainingSampleError("no datasets given to build labeler samples from")
    train_names, val_names = split_sources(list(datasets), config)
    parts: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for part, names in (("train", train_names), ("validation", val_names)):
        for name in names:
            built = source_samples(datasets[name], embedder, gifa, config, source=name)
            logger.info("%s: %d sample(s) from %s", part, len(built), name)
            parts[part].extend(built)
    stats = {"train_sources": train_names, "validation_sources": val_names,
             "n_train_samples": len(parts["train"]), "n_validation_samples": len(parts["validation"]),
             "n_train_messages": sum(s["n_messages"] for s in parts["train"]),
             "n_validation_messages": sum(s["n_messages"] for s in parts["validation"]),
             "n_train_intents": len({i for s in parts["train"] for i in s["gold"]})}
    return LabelerSamples(parts["train"], parts["validation"], stats)


def load_sources(paths: Iterable[str | Path]) -> dict[str, Dataset]:
    """name (file stem) -> dataset, for CSV/JSONL files and folders of them (sorted)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".jsonl"))
            if not found:
                raise TrainingSampleError(f"{path} holds no .csv or .jsonl conversation files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise TrainingSampleError(f"{path} does not exist; give conversation files or folders of them")
    out: dict[str, Dataset] = {}
    for path in files:
        name = path.stem if path.stem not in out else f"{path.parent.name}/{path.stem}"
        out[name] = load_conversations(path)
    return out
