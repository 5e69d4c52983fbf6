"""The hybrid labeler: embeddings propose clusters, an LLM names them and may split or merge them.

Cost grows with the number of clusters, not messages: one naming call per cluster (showing a few
representative messages) and at most one yes/no merge call per pair of neighbouring clusters.
Any reply that cannot be used (no JSON, an invalid name, out-of-range message numbers, an LLM
error) falls back to the cluster's TF-IDF name, so a weak model can never make the labels worse
than the embedding labeler's.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from igft.data import Dataset
from igft.discover.embedding import (Clustering, DiscoveryConfigError, EmbeddingLabelerConfig, build_catalog,
                                     cluster_dataset, tfidf_names)
from igft.discover.naming import representatives, to_snake_case
from igft.errors import IgftError
from igft.labeling import LabelingResult
from igft.llm.base import LM, CompletionRequest, Embedder

logger = logging.getLogger(__name__)

# Names a model copies from the prompt or uses when it has nothing to say: never accept them.
REJECTED_NAMES = frozenset({"customer", "assistant", "user", "agent", "intent", "intent_name", "name",
                            "snake_case_name", "name_a", "name_b", "other", "unknown", "none", "null", "n_a",
                            "messages", "message", "split", "json"})

NAMING_PROMPT = """You label intents in customer-support conversations.
An embedding model grouped these {role} messages together ({shown} of {total} shown):

{examples}

Reply with JSON only.
If the messages share one intent: {{"intent": "<name>", "description": "<one sentence>"}}
If they clearly express different intents: {{"split": [{{"intent": "<name>", "messages": [1, 2]}}, {{"intent": "<other name>", "messages": [3]}}]}}
A name is 1-4 lowercase English words joined by underscores saying what the {role} does or wants, such as report_problem or ask_clarification."""

MERGE_PROMPT = """Do these two groups of customer-support messages express the same intent?

Group A ({name_a}):
{examples_a}

Group B ({name_b}):
{examples_b}

Answer with one word: yes or no."""


@dataclass
class HybridConfig:
    """Options of the hybrid labeler (the embedding stage takes `embedding`)."""

    embedding: EmbeddingLabelerConfig = field(default_factory=EmbeddingLabelerConfig, metadata={
        "help": "how the clusters are proposed (see EmbeddingLabelerConfig)"})
    n_shown: int = field(default=8, metadata={"help": "representative messages shown to the LLM per cluster"})
    allow_split: bool = field(default=True, metadata={"help": "let the LLM split a cluster it finds mixed"})
    allow_merge: bool = field(default=True, metadata={"help": "ask the LLM whether neighbouring clusters are one intent"})
    merge_similarity: float = field(default=0.5, metadata={
        "help": "centroid cosine similarity above which two clusters are a merge candidate (and above which "
                "two clusters the LLM named alike are merged)"})
    max_merge_checks: int | None = field(default=None, metadata={
        "help": "cap on yes/no merge calls (default: the number of clusters)"})
    max_tokens: int = field(default=200, metadata={"help": "completion tokens per naming call"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature of every call"})

    def validate(self) -> None:
        self.embedding.validate()
        if self.n_shown < 1:
            raise DiscoveryConfigError(f"n_shown must be at least 1, got {self.n_shown}")


def clean_name(raw: object) -> str | None:
    """A usable snake_case intent name from an LLM's string, or None."""
    if not isinstance(raw, str):
        return None
    name = to_snake_case(raw, max_words=8)
    words = name.split("_") if name else []
    if not 1 <= len(words) <= 6 or len(name) > 60 or name in REJECTED_NAMES:
        return None
    return name


def _json_object(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_naming_reply(text: str, n_shown: int) -> tuple[str, object] | None:
    """('name', (name, description)) or ('split', [(name, [0-based indices]), ...]) or None when unusable."""
    obj = _json_object(text or "")
    if obj is None:
        match = re.search(r'"?intent"?\s*[:=]\s*"?([A-Za-z][\w \-]*)', text or "")
        name = clean_name(match.group(1)) if match else None
        return ("name", (name, None)) if name else None
    split = obj.get("split")
    if isinstance(split, list) and len(split) >= 2:
        groups, seen = [], set()
        for item in split:
            if not isinstance(item, dict):
                return None
            name, numbers = clean_name(item.get("intent")), item.get("messages")
            if name is None or not isinstance(numbers, list):
                return None
            idx = [int(x) - 1 for x in numbers if isinstance(x, (int, float)) and not isinstance(x, bool)]
            idx = [i for i in idx if 0 <= i < n_shown and i not in seen]
            seen.update(idx)
            if idx:
                groups.append((name, idx))
        if len({g[0] for g in groups}) >= 2:
            return ("split", groups)
        if groups:  # every group got the same name: that is one intent
            return ("name", (groups[0][0], None))
        return None
    name = clean_name(obj.get("intent"))
    if name is None:
        return None
    description = obj.get("description") if isinstance(obj.get("description"), str) else None
    return ("name", (name, description.strip()[:300] if description else None))


def parse_yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when the reply says neither first."""
    match = re.search(r"\b(yes|no)\b", (text or "").lower())
    return None if match is None else match.group(1) == "yes"


class _Caller:
    """Counts calls and tokens; turns LLM errors (not replay misses or config errors) into fallbacks."""

    def __init__(self, lm: LM, config: HybridConfig, seed: int):
        self.lm, self.config, self.seed = lm, config, seed
        self.stats = {"calls": 0, "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "llm_errors": 0, "budget_exhausted": False}

    def __call__(self, prompt: str, max_tokens: int) -> str | None:
        if self.stats["budget_exhausted"]:
            return None
        request = CompletionRequest.from_prompt(prompt, temperature=self.config.temperature,
                                                max_tokens=max_tokens, seed=self.seed)
        try:
            completion = self.lm.complete(request)
        except IgftError as exc:
            if type(exc).__name__ != "BudgetExceeded":
                raise  # a replay miss or a bad spec: the user must fix it, not get silent fallbacks
            logger.warning("LLM budget spent after %d calls; remaining clusters keep TF-IDF names", self.stats["calls"])
            self.stats["budget_exhausted"] = True
            return None
        except Exception as exc:  # noqa: BLE001 - a flaky backend must not lose the whole labeling
            logger.warning("LLM call failed (%s); using the TF-IDF name", exc)
            self.stats["llm_errors"] += 1
            return None
        self.stats["calls"] += 1
        self.stats["cached_calls"] += int(bool(completion.cached))
        self.stats["prompt_tokens"] += completion.prompt_tokens
        self.stats["completion_tokens"] += completion.completion_tokens
        return completion.text


def _numbered(texts: Sequence[str]) -> str:
    return "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))


@dataclass
class _Group:
    members: np.ndarray           # row indices into the clustering's messages
    name: str | None = None       # the LLM's name; None = fall back to TF-IDF
    description: str | None = None


def _name_groups(clusters: Clustering, call: _Caller, config: HybridConfig,
                 progress: bool = False) -> tuple[list[_Group], dict]:
    """One naming call per embedding cluster; a split reply turns one cluster into several groups."""
    groups: list[_Group] = []
    counts = {"splits": 0, "fallback_names": 0}
    for members in tqdm(clusters.members(), desc="naming clusters", disable=not progress):
        shown = representatives(clusters.vectors, members, config.n_shown)
        role = "/".join(sorted({clusters.messages[i].role for i in members}))
        prompt = NAMING_PROMPT.format(role=role, shown=len(shown), total=len(members),
                                      examples=_numbered([clusters.messages[i].text for i in shown]))
        reply = call(prompt, config.max_tokens)
        parsed = parse_naming_reply(reply, len(shown)) if reply is not None else None
        if parsed is None:
            counts["fallback_names"] += 1
            groups.append(_Group(members))
        elif parsed[0] == "split" and config.allow_split:
            parts = parsed[1]
            # Messages not shown join the part whose shown messages they are closest to on average.
            centroids = np.stack([clusters.vectors[[shown[i] for i in idx]].mean(axis=0) for _, idx in parts])
            owner = np.argmax(clusters.vectors[members] @ centroids.T, axis=1)
            position = {row: p for p, row in enumerate(members.tolist())}
            for g, (_, idx) in enumerate(parts):
                owner[[position[shown[i]] for i in idx]] = g
            for g, (name, _) in enumerate(parts):
                if np.any(owner == g):
                    groups.append(_Group(members[owner == g], name))
            counts["splits"] += 1
        else:
            name, description = parsed[1] if parsed[0] == "name" else (parsed[1][0][0], None)
            groups.append(_Group(members, name, description))
    return groups, counts


def _merge_same_names(groups: list[_Group], vectors: np.ndarray, min_similarity: float) -> tuple[list[_Group], int]:
    """Groups the LLM gave the same name are one intent (a label is its name) -- when their centroids
    are at least `min_similarity` alike. A model that calls everything `report_problem` must not
    collapse the labeling: a far-apart namesake gets a numbered name instead."""
    out: list[_Group] = []
    by_name: dict[str, list[_Group]] = {}
    renamed = 0
    for g in groups:
        if g.name is None:
            out.append(g)
            continue
        centroid = _unit(vectors[g.members].mean(axis=0))
        target = next((h for h in by_name.get(g.name, [])
                       if float(centroid @ _unit(vectors[h.members].mean(axis=0))) >= min_similarity), None)
        if target is not None:
            target.members = np.sort(np.concatenate([target.members, g.members]))
            target.description = target.description or g.description
            continue
        namesakes = by_name.setdefault(g.name, [])
        namesakes.append(g)
        if len(namesakes) > 1:
            g.name = f"{g.name}_{len(namesakes)}"
            renamed += 1
        out.append(g)
    return out, renamed


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _merge_checks(groups: list[_Group], clusters: Clustering, call: _Caller, config: HybridConfig,
                  display: Sequence[str]) -> tuple[list[_Group], int]:
    """Ask yes/no for each group and its nearest group (centroid similarity >= merge_similarity), closest pairs first."""
    if len(groups) < 2:
        return groups, 0
    vectors = clusters.vectors
    centroids = np.stack([_unit(vectors[g.members].mean(axis=0)) for g in groups])
    roles = [frozenset(clusters.messages[i].role for i in g.members) for g in groups]
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    if config.embedding.split_roles:
        sims[np.array([[a != b for b in roles] for a in roles])] = -np.inf
    pairs = set()
    for a in range(len(groups)):
        b = int(np.argmax(sims[a]))
        if sims[a, b] >= config.merge_similarity:
            pairs.add((min(a, b), max(a, b)))
    limit = len(groups) if config.max_merge_checks is None else config.max_merge_checks
    ordered = sorted(pairs, key=lambda p: (-sims[p], p))[:limit]
    parent = list(range(len(groups)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    merges = 0
    for a, b in ordered:
        if find(a) == find(b):
            continue
        examples = [_numbered([clusters.messages[i].text for i in representatives(vectors, groups[x].members, 4)])
                    for x in (a, b)]
        reply = call(MERGE_PROMPT.format(name_a=display[a], name_b=display[b], examples_a=examples[0],
                                         examples_b=examples[1]), 5)
        if reply is not None and parse_yes_no(reply):
            parent[find(b)] = find(a)
            merges += 1
    out: dict[int, _Group] = {}
    for i, g in enumerate(groups):
        root = find(i)
        if root not in out:
            out[root] = _Group(g.members, g.name, g.description)
        else:
            keep = out[root]
            # The bigger group's name wins; an LLM name beats a fallback.
            if (g.name is not None, len(g.members)) > (keep.name is not None, len(keep.members)):
                keep.name, keep.description = g.name, g.description
            keep.members = np.sort(np.concatenate([keep.members, g.members]))
    return [out[r] for r in sorted(out)], merges


def _final_names(groups: list[_Group], clusters: Clustering, name_words: int) -> list[str]:
    """LLM names where usable, unique TF-IDF names for the rest."""
    taken = [g.name for g in groups if g.name is not None]
    need = [i for i, g in enumerate(groups) if g.name is None]
    sub = Clustering(clusters.messages, clusters.vectors, np.full(len(clusters.messages), -1))
    fallback = []
    if need:
        # tfidf over all groups so that the idf reflects the whole dataset; keep only the fallbacks.
        ids = np.full(len(clusters.messages), 0)
        for k, g in enumerate(groups):
            ids[g.members] = k
        sub.cluster_ids = ids
        keyword_names = tfidf_names(sub, name_words, taken=taken)
        fallback = [keyword_names[i] for i in need]
    names = [g.name for g in groups]
    for i, name in zip(need, fallback):
        names[i] = name
    return names


def label_hybrid(dataset: Dataset, embedder: Embedder, lm: LM, config: HybridConfig | None = None,
                 seed: int = 0, progress: bool = False) -> LabelingResult:
    """Cluster with embeddings, then let `lm` name, split and merge the clusters."""
    config = config or HybridConfig()
    config.validate()
    start = time.perf_counter()
    clusters = cluster_dataset(dataset, embedder, config.embedding, seed=seed, progress=progress)
    call = _Caller(lm, config, seed)
    groups, counts = _name_groups(clusters, call, config, progress)
    n_proposed = int(clusters.cluster_ids.max()) + 1 if len(clusters.cluster_ids) else 0
    groups, counts["renamed_namesakes"] = _merge_same_names(groups, clusters.vectors, config.merge_similarity)
    merges = 0
    if config.allow_merge:
        display = _final_names(groups, clusters, config.embedding.name_words)
        groups, merges = _merge_checks(groups, clusters, call, config, display)
    names = _final_names(groups, clusters, config.embedding.name_words)
    ids = np.zeros(len(clusters.messages), dtype=int)
    for k, g in enumerate(groups):
        ids[g.members] = k
    final = Clustering(clusters.messages, clusters.vectors, ids, clusters.info)
    descriptions = [g.description or f"messages about {n.replace('_', ' ')}" for g, n in zip(groups, names)]
    catalog = build_catalog(final, names, config.embedding.n_representatives, descriptions)
    labels = {m.key: names[c] for m, c in zip(final.messages, ids)}
    config_dict = asdict(config)
    config_dict["embedding"].pop("threshold_grid", None)
    stats = {"labeler": "hybrid", "lm": getattr(lm, "model", type(lm).__name__),
             "embedder": getattr(embedder, "model", type(embedder).__name__), **call.stats,
             "seconds": round(time.perf_counter() - start, 3), "n_intents": len(names),
             "n_proposed_clusters": n_proposed, "merges": merges, **counts,
             "n_messages": len(clusters.messages), "seed": seed, "config": config_dict,
             **{k: v for k, v in clusters.info.items() if k not in ("method", "threshold_search")}}
    return LabelingResult(labels=labels, catalog=catalog, stats=stats, failures=[])
