"""Deduplication time at scale (100k messages by default), exact-only next to exact + MinHash near-duplicates.

    python benchmarks/dedup_scale.py [--messages 100000] [--intents 500] [--plant 0.01] [--seed 0]

Data: igft.synthetic.synthetic_dataset (seeded, template-written customer-support conversations, so
they hold many natural exact and near duplicates) plus planted near-duplicates: a fraction of the
conversations is copied with one character of one message changed, and of messages with one word
repeated. Prints, per setting, the seconds taken, what was dropped, and how many planted copies were
caught (a planted copy must be dropped as a duplicate of its original or of an earlier copy of it).
"""
from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

from igft.curate.dedup import DedupConfig, deduplicate
from igft.data import Conversation, Dataset
from igft.synthetic import synthetic_dataset


def plant_copies(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, set[int], set[tuple[int, int]]]:
    """Append edited copies: whole conversations (one character changed) and single messages (a word repeated)."""
    rng = random.Random(seed)
    conversations = list(dataset.conversations)
    next_number = max(c.number for c in conversations) + 1
    planted_conversations, planted_messages = set(), set()
    for source in rng.sample(conversations, max(1, int(fraction * len(conversations)))):
        messages = list(source.messages)
        k = rng.randrange(len(messages))
        text = messages[k].text
        pos = rng.randrange(len(text))
        messages[k] = replace(messages[k], text=text[:pos] + ("x" if text[pos] != "x" else "y") + text[pos + 1:])
        conversations.append(Conversation(next_number, tuple(replace(m, conversation_number=next_number) for m in messages)))
        planted_conversations.add(next_number)
        next_number += 1
    for source in rng.sample(dataset.messages, max(1, int(fraction * dataset.n_messages))):
        words = source.text.split()
        if len(words) < 6:
            continue
        k = rng.randrange(len(words))
        text = " ".join(words[:k + 1] + words[k:])
        copy = replace(source, conversation_number=next_number, index=0, text=text)
        conversations.append(Conversation(next_number, (copy,)))
        planted_messages.add((next_number, 0))
        next_number += 1
    return Dataset(conversations, "synthetic+planted"), planted_conversations, planted_messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--plant", type=float, default=0.01, help="fraction of conversations / messages copied with an edit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = synthetic_dataset(args.messages, args.intents, seed=args.seed)
    data, planted_conversations, planted_messages = plant_copies(base, args.plant, args.seed)
    print(f"data: {len(data)} conversations, {data.n_messages} messages (synthetic_dataset seed {args.seed} "
          f"+ {len(planted_conversations)} planted conversation copies, {len(planted_messages)} planted message copies)")
    settings = [("conversation", False), ("conversation", True), ("message", False), ("message", True), ("both", True)]
    for level, near in settings:
        start = time.perf_counter()
        result = deduplicate(data, DedupConfig(level=level, near=near))
        seconds = time.perf_counter() - start
        dropped_conversations = {d.conversation_number for d in result.dropped if d.level == "conversation"}
        dropped_messages = {(d.conversation_number, d.index) for d in result.dropped if d.level == "message"}
        caught = []
        if level in ("conversation", "both"):
            caught.append(f"planted conversations caught {len(planted_conversations & dropped_conversations)}/{len(planted_conversations)}")
        if level in ("message", "both"):
            caught.append(f"planted messages caught {len(planted_messages & dropped_messages)}/{len(planted_messages)}")
        print(f"level {level:<12} {'exact+near' if near else 'exact':<10} {seconds:7.1f} s  kept {len(result.kept)} conv / "
              f"{result.kept.n_messages} msg  dropped {result.counts()}  " + "; ".join(caught))


if __name__ == "__main__":
    main()
