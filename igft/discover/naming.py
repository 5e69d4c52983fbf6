"""Readable, unique snake_case names for clusters without an LLM: class-based TF-IDF keywords.

Class-based TF-IDF (as in BERTopic) treats all messages of one cluster as one document, so a word
scores high when it is frequent in this cluster and rare across the others. The top keywords joined
with `_` make a name such as `loyalty_card_recognized`; collisions take more keywords, then a number.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

# Function words that never name an intent. Deliberately short: scikit-learn's English list also drops
# words that DO carry intents in support chats (no, not, thanks, please, bill, call, find, amount, ...).
STOP_WORDS = frozenset("""
a about above after again against am an and any are as at be been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself of off on once only
or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves s t d ll m re ve
im ive id youre youll youve thats theres its lets dont doesnt didnt cant isnt wasnt arent wont
customer assistant agent user also already still really just now get got go one
""".split())
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
FALLBACK_NAME = "other"


def is_snake_case(name: str) -> bool:
    """True for names like `report_problem` (lowercase words joined by single underscores)."""
    return bool(SNAKE_CASE.match(name or ""))


def to_snake_case(text: str, max_words: int = 6) -> str:
    """Lowercase ASCII words of `text` joined with `_` (at most `max_words`); '' when none remain."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(text)).lower())
    name = "_".join(words[:max_words])
    # A name must start with a letter to be a valid identifier-like label.
    return re.sub(r"^[0-9_]+", "", name)


def ctfidf_keywords(cluster_texts: Sequence[Sequence[str]], top_n: int = 5) -> list[list[str]]:
    """Top `top_n` class-based TF-IDF keywords of each cluster (one list of texts per cluster).

    Ties are broken alphabetically so the names are deterministic. Apostrophes are dropped first
    so that "don't" is one word (a stop word) rather than "don" + "t".
    """
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(texts).replace("'", "").replace("\u2019", "") for texts in cluster_texts]
    vectorizer = CountVectorizer(lowercase=True, stop_words=sorted(STOP_WORDS),
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        counts = vectorizer.fit_transform(docs).toarray().astype(float)
    except ValueError:  # empty vocabulary: every word was a stop word
        return [[] for _ in docs]
    vocab = np.array(vectorizer.get_feature_names_out())
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    # BERTopic's idf: log(1 + A / f_t), A = average number of words per cluster, f_t = frequency of t.
    avg_words = counts.sum() / max(len(docs), 1)
    idf = np.log(1.0 + avg_words / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    keywords = []
    for row in scores:
        order = sorted((i for i in np.flatnonzero(row > 0)), key=lambda i: (-row[i], vocab[i]))
        keywords.append([str(vocab[i]) for i in order[:top_n]])
    return keywords


def unique_names(keyword_lists: Sequence[Sequence[str]], n_words: int = 3,
                 taken: Sequence[str] = ()) -> list[str]:
    """One unique snake_case name per keyword list.

    The name is the first `n_words` keywords; on a collision the next keywords are appended one by
    one, then a counter (`_2`, `_3`, ...). Names in `taken` are avoided too.
    """
    used = set(taken)
    names = []
    for keywords in keyword_lists:
        words = [w for w in (to_snake_case(k) for k in keywords) if w]
        base = "_".join(words[:n_words]) or FALLBACK_NAME
        name, extra = base, n_words
        while name in used and extra < len(words):
            extra += 1
            name = "_".join(words[:extra])
        counter = 2
        root = name
        while name in used:
            name = f"{root}_{counter}"
            counter += 1
        used.add(name)
        names.append(name)
    return names


def representatives(vectors: np.ndarray, members: np.ndarray, n: int) -> list[int]:
    """Indices (into `vectors`) of the `n` members closest to the cluster centroid, by cosine."""
    members = np.asarray(members)
    centroid = vectors[members].mean(axis=0)
    norm = np.linalg.norm(centroid)
    if norm > 0:
        centroid = centroid / norm
    sims = vectors[members] @ centroid
    # Stable sort on -similarity keeps file order among ties: deterministic.
    order = np.argsort(-sims, kind="stable")
    return [int(members[i]) for i in order[:n]]
