"""GIFA's memory: the intent catalog and the retrieval index over already-labeled messages.

The catalog keeps every intent in first-seen order (so outputs are stable) with a description, a few
example messages and a count. The index holds the embeddings of all messages (computed once, batched)
and grows by appending the rows of each newly labeled conversation; a query for a whole conversation
is one matrix product against the labeled rows, never a rebuild -- or, above ANN_THRESHOLD labeled
messages, an inverted-file (IVF) search over the nearest cells (igft/gifa/ivf.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from igft.labeling import CATALOG_COLUMNS


@dataclass
class CatalogEntry:
    description: str = ""
    examples: list[str] = field(default_factory=list)
    count: int = 0


class IntentCatalog:
    """intent -> description, examples (the first `max_examples` messages seen), count; first-seen order."""

    def __init__(self, max_examples: int = 5):
        self.max_examples = max_examples
        self._entries: dict[str, CatalogEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, intent: object) -> bool:
        return intent in self._entries

    def __getitem__(self, intent: str) -> CatalogEntry:
        return self._entries[intent]

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def add(self, intent: str, text: str) -> bool:
        """Count one message with this intent; True when the intent is new."""
        entry = self._entries.get(intent)
        is_new = entry is None
        if is_new:
            entry = self._entries[intent] = CatalogEntry()
        entry.count += 1
        if len(entry.examples) < self.max_examples:
            entry.examples.append(text)
        return is_new

    def set_description(self, intent: str, description: str) -> None:
        """Set a description once; later descriptions of the same intent are ignored (first one wins)."""
        entry = self._entries.get(intent)
        if entry is not None and not entry.description and description:
            entry.description = description

    def to_frame(self) -> pd.DataFrame:
        """Columns intent, description, examples (list of texts), count; first-seen order."""
        rows = [{"intent": name, "description": e.description, "examples": list(e.examples), "count": e.count}
                for name, e in self._entries.items()]
        return pd.DataFrame(rows, columns=CATALOG_COLUMNS)


# Above this many labeled messages the index answers through an IVF index (when faiss is installed); below it
# the exact matrix product is both exact and faster.
ANN_THRESHOLD = 20_000


class RetrievalIndex:
    """Nearest already-labeled messages for the messages of the next conversation.

    `embeddings[i]` is the (L2-normalised) embedding of the message `keys[i]`; all messages are given up
    front. `add(keys, intents)` marks messages as labeled by copying their rows into the labeled block
    (amortised O(rows)); `query` scores a whole conversation against the labeled block in one matmul.
    Once more than `ann_threshold` messages are labeled (and faiss is importable), queries go through
    an inverted-file index of the labeled rows instead (igft/gifa/ivf.py), its candidates re-scored exactly; `ann_threshold=None`
    keeps exact search at every size. `n_labeled` doubles as a snapshot marker: `query(..., upto=n)`
    sees only the first n labeled rows (exactly).

    Per conversation the work is O(messages x (labeled rows below the threshold | about sqrt(n) above it)):
    row lookups go through one dict, the labeled -> embedding row map is a preallocated array, and
    the candidates of all messages are re-scored in one batched product and ordered in one sort
    (no per-message Python loop).
    """

    def __init__(self, embeddings: np.ndarray, keys: Sequence[Hashable], *, ann_threshold: int | None = ANN_THRESHOLD,
                 seed: int = 0):
        from igft.gifa.ivf import faiss_available

        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
            raise ValueError(f"embeddings shape {embeddings.shape} does not match {len(keys)} keys")
        self._all = embeddings
        self._row = {key: i for i, key in enumerate(keys)}
        if len(self._row) != len(keys):
            raise ValueError("duplicate message keys in the retrieval index")
        # Size first: below the threshold faiss is not even imported (its import costs a few hundred ms).
        self.ann_threshold = ann_threshold if (ann_threshold is not None and ann_threshold < len(keys)
                                               and faiss_available()) else None
        self.seed = seed
        # The exact block holds the first `ann_threshold` labeled rows (all of them without the ANN index).
        block = len(keys) if self.ann_threshold is None else self.ann_threshold
        self._labeled = np.empty((max(block, 1), embeddings.shape[1]), dtype=np.float32)
        # labeled row -> row in `embeddings`; every message is labeled at most once, so len(keys) fits all.
        self._labeled_all_rows = np.empty(max(len(keys), 1), dtype=np.int64)
        self._intents: list[str] = []
        self._labeled_keys: list[Hashable] = []
        self._is_labeled: set[Hashable] = set()
        self._ann = None

    @property
    def n_labeled(self) -> int:
        return len(self._intents)

    @property
    def uses_ann(self) -> bool:
        return self._ann is not None

    @property
    def labeled_intents(self) -> list[str]:
        return list(self._intents)

    def _row_numbers(self, keys: Iterable[Hashable]) -> list[int]:
        row = self._row
        return [row[k] for k in keys]  # KeyError names an unknown key

    def rows(self, keys: Iterable[Hashable]) -> np.ndarray:
        """Embeddings of these messages (KeyError names an unknown key)."""
        return self._all[self._row_numbers(keys)]

    def add(self, keys: Sequence[Hashable], intents: Sequence[str]) -> None:
        """Append newly labeled messages; a message can be added once."""
        if len(keys) != len(intents):
            raise ValueError(f"{len(keys)} keys but {len(intents)} intents")
        if not keys:
            return
        if not self._is_labeled.isdisjoint(keys) or len(set(keys)) != len(keys):
            already = [k for k in keys if k in self._is_labeled] or list(keys)
            raise ValueError(f"messages already in the index: {already[:5]}")
        start, stop = self.n_labeled, self.n_labeled + len(keys)
        numbers = self._row_numbers(keys)
        vectors = self._all[numbers]
        in_block = max(0, min(stop, self._labeled.shape[0]) - start)
        self._labeled[start:start + in_block] = vectors[:in_block]
        self._labeled_all_rows[start:stop] = numbers
        self._intents.extend(intents)
        self._labeled_keys.extend(keys)
        self._is_labeled.update(keys)
        if self._ann is not None:
            self._ann.add(vectors, lambda: self._labeled_rows(stop))
        elif self.ann_threshold is not None and stop > self.ann_threshold:
            from igft.gifa.ivf import IVFRows

            self._ann = IVFRows(self._labeled_rows(stop), seed=self.seed)  # all labeled rows, in labeling order

    def _labeled_rows(self, n: int) -> np.ndarray:
        if n <= self._labeled.shape[0]:
            return self._labeled[:n]
        return self._all[self._labeled_all_rows[:n]]

    def neighbours(self, keys: Sequence[Hashable], top_k: int, upto: int | None = None) -> list[list[int]]:
        """For each query message, the labeled-row numbers of its top_k most similar labeled messages.

        Best first; ties broken by the earlier labeled row, so results are deterministic.
        """
        rows, _ = self._search(keys, top_k, upto)
        return [[int(r) for r in line if r >= 0] for line in rows]

    def known_intents(self, keys: Sequence[Hashable], top_k: int, upto: int | None = None) -> list[str]:
        """The distinct intents of the top_k neighbours of every query message, most similar first.

        An intent ranks by its best (score, earlier row) over all messages. Sorting every (score, row)
        pair once by (-score, row) and keeping each intent's first appearance gives exactly that order.
        """
        rows, scores = self._search(keys, top_k, upto)
        if rows.size == 0:
            return []
        rows, scores = rows.ravel(), scores.ravel()
        valid = rows >= 0
        rows, scores = rows[valid], scores[valid]
        order = np.lexsort((rows, -scores))
        intents = self._intents
        return list(dict.fromkeys([intents[r] for r in rows[order].tolist()]))

    def _search(self, keys: Sequence[Hashable], top_k: int, upto: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores), each (messages, k): per query message its top_k labeled rows ordered by
        (-score, row); -1 rows (score -inf) pad where an approximate search found fewer."""
        n = self.n_labeled if upto is None else min(upto, self.n_labeled)
        if n == 0 or top_k <= 0 or not keys:
            return np.empty((len(keys), 0), dtype=np.int64), np.empty((len(keys), 0), dtype=np.float32)
        queries = self.rows(keys)
        k = min(top_k, n)
        if self._ann is not None and n == self.n_labeled:
            return self._search_ann(queries, k)
        scores = queries @ self._labeled_rows(n).T  # (m, n): the one product per conversation
        # The k-th best score per row (one partition), then every row scoring at least that, ordered by
        # (-score, row) and cut at k: exact top-k with ties going to the earlier labeled message.
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        out_rows = np.empty((len(keys), k), dtype=np.int64)
        out_scores = np.empty((len(keys), k), dtype=np.float32)
        for i in range(len(keys)):
            cand = np.flatnonzero(scores[i] >= kth[i])
            best = cand[np.lexsort((cand, -scores[i, cand]))[:k]]
            out_rows[i], out_scores[i] = best, scores[i, best]
        return out_rows, out_scores

    def _search_ann(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # (m, c) distinct labeled rows per query (each row sits in one cell), -1 for none, chosen by
        # 8-bit codes; re-scored exactly here, so ranking and tie-breaks match the exact search.
        candidates = self._ann.candidates(queries, k)
        invalid = candidates < 0
        vectors = self._all[self._labeled_all_rows[np.where(invalid, 0, candidates)]]  # (m, c, dim)
        scores = np.matmul(vectors, queries[:, :, None])[:, :, 0]
        scores[invalid] = -np.inf
        order = np.lexsort((candidates, -scores), axis=1)[:, :k]  # a -1 scores -inf: after every real row
        line = np.arange(len(candidates))[:, None]
        return candidates[line, order], scores[line, order]

    def labeled_key(self, row: int) -> Hashable:
        return self._labeled_keys[row]

    def intent_of_row(self, row: int) -> str:
        return self._intents[row]

