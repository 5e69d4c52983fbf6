"""One seeded split of a search's conversations into train, validation and test.

train feeds the optimizer (error examples and counts in feedback prompts, Lamarckian examples);
validation decides every comparison the search makes (Hyperband rungs are prefixes of its order);
test is scored once, after the search, for the chosen instruction and the seed instruction. Without
this the reported best would be judged on the conversations it was selected on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from igft.data import Dataset
from igft.errors import IgftError

DEFAULT_SPLIT = (0.2, 0.5, 0.3)
MIN_CONVERSATIONS = 6  # two per part: a part of one conversation cannot show a false split across conversations


class SplitError(IgftError):
    """Split fractions or a dataset that cannot be split into train, validation and test."""


@dataclass
class SearchSplit:
    train: Dataset
    validation: Dataset
    test: Dataset

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_conversations(dataset: Dataset, fractions=DEFAULT_SPLIT, seed: int = 0) -> SearchSplit:
    """Shuffle the conversations once with `seed` and cut train / validation / test by `fractions`."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise SplitError(f"--split needs three positive fractions TRAIN VAL TEST, got {list(fractions)}")
    total = sum(fractions)
    if abs(total - 1.0) > 1e-6:
        raise SplitError(f"--split fractions must sum to 1, got {list(fractions)} (sum {total:g})")
    n = len(dataset)
    if n < MIN_CONVERSATIONS:
        raise SplitError(f"{dataset.source}: {n} conversations; a search needs at least {MIN_CONVERSATIONS} "
                         "(train, validation and test, two each); give more conversations")
    order = list(dataset.numbers)
    random.Random(seed).shuffle(order)
    n_train = max(2, round(n * fractions[0]))
    n_test = max(2, round(n * fractions[2]))
    n_val = n - n_train - n_test
    if n_val < 2:
        raise SplitError(f"--split {' '.join(f'{f:g}' for f in fractions)} leaves {n_val} of {n} conversations for "
                         "validation; give validation a larger share")
    return SearchSplit(train=dataset.subset(order[:n_train]), validation=dataset.subset(order[n_train:n_train + n_val]),
                       test=dataset.subset(order[n_train + n_val:]))
