"""Baselines users expect beside a fine-tuned LLM: TF-IDF + logistic regression, bundled-MiniLM
embeddings + logistic regression, and zero-/few-shot prompting of any LLM spec through the client layer.

Multi-field tasks get one logistic regression per field (the fields share the features).
"""
from __future__ import annotations

import json
import logging
import pickle
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from igft.classify.base import Classifier, ClassifierError
from igft.classify.prompting import chat_messages, parse_answer
from igft.classify.task import TaskSchema

logger = logging.getLogger(__name__)


class _ConstantModel:
    """Stands in for a field whose training rows all carry one label (LogisticRegression refuses those)."""

    def __init__(self, label: str):
        self.label = label

    def predict(self, x) -> np.ndarray:
        return np.array([self.label] * x.shape[0], dtype=object)


def _fit_per_field(features, targets: Sequence[dict[str, str]], schema: TaskSchema, *, C: float,
                   class_weight: str | None, seed: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    models: dict[str, Any] = {}
    for spec in schema.fields:
        y = [t[spec.name] for t in targets]
        if len(set(y)) < 2:
            models[spec.name] = _ConstantModel(y[0])
            continue
        model = LogisticRegression(C=C, max_iter=2000, class_weight=class_weight, random_state=seed)
        models[spec.name] = model.fit(features, y)
    return models


def _predict_per_field(models: dict[str, Any], features, schema: TaskSchema) -> list[dict[str, str]]:
    columns = {spec.name: models[spec.name].predict(features) for spec in schema.fields}
    n = features.shape[0]
    return [{name: str(columns[name][i]) for name in columns} for i in range(n)]


def _proba_per_field(models: dict[str, Any], features, schema: TaskSchema) -> dict[str, np.ndarray]:
    """Class probabilities per field, columns in the field's label order (labels unseen in training: 0)."""
    out = {}
    for spec in schema.fields:
        model = models[spec.name]
        column = {label: i for i, label in enumerate(spec.labels)}
        probs = np.zeros((features.shape[0], len(spec.labels)))
        if isinstance(model, _ConstantModel):
            probs[:, column[model.label]] = 1.0
        else:
            probs[:, [column[str(c)] for c in model.classes_]] = model.predict_proba(features)
        out[spec.name] = probs
    return out


@dataclass
class TfidfConfig:
    analyzer: str = field(default="word+char", metadata={"help": "word, char_wb, or word+char (both, concatenated)"})
    max_features: int = field(default=50000, metadata={"help": "vocabulary cap per analyzer"})
    C: float = field(default=10.0, metadata={"help": "inverse regularisation strength of the logistic regression"})
    class_weight: str | None = field(default=None, metadata={"help": "None or 'balanced' (inverse frequencies)"})
    seed: int = field(default=0, metadata={"help": "solver seed"})


class TfidfClassifier(Classifier):
    """TF-IDF (word 1-2 grams + character 2-5 grams) + logistic regression per field."""

    method = "tfidf"
    Config = TfidfConfig

    def _vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        cfg = self.config
        word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, max_features=cfg.max_features)
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=cfg.max_features)
        if cfg.analyzer == "word":
            return word
        if cfg.analyzer == "char_wb":
            return char
        if cfg.analyzer == "word+char":
            return FeatureUnion([("word", word), ("char", char)])
        raise ClassifierError(f"unknown analyzer {cfg.analyzer!r}; use word, char_wb or word+char")

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        self.vectorizer = self._vectorizer()
        features = self.vectorizer.fit_transform(list(texts))
        self.models = _fit_per_field(features, targets, self.schema, C=self.config.C,
                                     class_weight=self.config.class_weight, seed=self.config.seed)
        return {"n_train": len(texts), "n_features": int(features.shape[1])}

    def predict(self, texts):
        return _predict_per_field(self.models, self.vectorizer.transform(list(texts)), self.schema)

    def predict_proba(self, texts) -> dict[str, np.ndarray]:
        """Logistic-regression probabilities per field (what the out-of-scope threshold reads)."""
        return _proba_per_field(self.models, self.vectorizer.transform(list(texts)), self.schema)

    def save_files(self, out_dir: Path) -> None:
        with open(out_dir / "tfidf.pkl", "wb") as fh:
            pickle.dump({"vectorizer": self.vectorizer, "models": self.models}, fh)

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "TfidfClassifier":
        clf = cls(schema, config)
        with open(in_dir / "tfidf.pkl", "rb") as fh:
            state = pickle.load(fh)  # our own file, written by save_files
        clf.vectorizer, clf.models = state["vectorizer"], state["models"]
        return clf


@dataclass
class EmbeddingConfig:
    embedder: str = field(default="local:minilm", metadata={"help": "embedder spec (local:minilm, openai:MODEL, ...)"})
    mode: str = field(default="live", metadata={"help": "client mode: live, record or replay"})
    cassette: str | None = field(default=None, metadata={"help": "cassette file for record/replay"})
    C: float = field(default=10.0, metadata={"help": "inverse regularisation strength of the logistic regression"})
    class_weight: str | None = field(default=None, metadata={"help": "None or 'balanced'"})
    seed: int = field(default=0, metadata={"help": "solver seed"})


class EmbeddingClassifier(Classifier):
    """Sentence embeddings (the bundled all-MiniLM-L6-v2 by default) + logistic regression per field."""

    method = "embeddings"
    Config = EmbeddingConfig

    def __init__(self, schema: TaskSchema, config: Any = None, embedder=None):
        super().__init__(schema, config)
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from igft.llm.factory import build_embedder

            self._embedder = build_embedder(self.config.embedder, mode=self.config.mode, cassette=self.config.cassette)
        return self._embedder

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        features = self.embedder.embed(list(texts))
        self.models = _fit_per_field(features, targets, self.schema, C=self.config.C,
                                     class_weight=self.config.class_weight, seed=self.config.seed)
        return {"n_train": len(texts), "dim": int(features.shape[1])}

    def predict(self, texts):
        return _predict_per_field(self.models, self.embedder.embed(list(texts)), self.schema)

    def predict_proba(self, texts) -> dict[str, np.ndarray]:
        """Logistic-regression probabilities per field (what the out-of-scope threshold reads)."""
        return _proba_per_field(self.models, self.embedder.embed(list(texts)), self.schema)

    def save_files(self, out_dir: Path) -> None:
        with open(out_dir / "embedding_lr.pkl", "wb") as fh:
            pickle.dump({"models": self.models}, fh)

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "EmbeddingClassifier":
        clf = cls(schema, config)
        with open(in_dir / "embedding_lr.pkl", "rb") as fh:
            clf.models = pickle.load(fh)["models"]
        return clf


@dataclass
class PromptConfig:
    lm: str = field(default="local:smollm2", metadata={"help": "LLM spec: openai:gpt-4o-mini, openai-compatible:URL:MODEL, hf:PATH, ..."})
    mode: str = field(default="live", metadata={"help": "client mode: live, record or replay"})
    cassette: str | None = field(default=None, metadata={"help": "cassette file for record/replay"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint for openai:MODEL specs (fine-tuned ids have colons, so they go here, not in the spec)"})
    shots: int = field(default=0, metadata={"help": "few-shot examples from the training rows (0 = zero-shot)"})
    max_tokens: int = field(default=64, metadata={"help": "answer length cap"})
    seed: int = field(default=0, metadata={"help": "seed for choosing the few-shot examples"})
    shortlist: int = field(default=0, metadata={"help": "0 = the prompt lists every label; N = it lists only the N "
                           "labels whose embedding centroid is nearest the query (one-field tasks; a retrieval "
                           "shortlist variant, its recall caps the accuracy: see igft.classify.shortlist)"})
    shortlist_embedder: str = field(default="local:minilm", metadata={"help": "embedder spec of the shortlist"})
    shortlist_per_label: int = field(default=20, metadata={"help": "training texts per label in its centroid (0 = all)"})


class PromptClassifier(Classifier):
    """Zero-/few-shot prompting of any LLM spec; answers are parsed into allowed labels.

    An answer no parser can map to an allowed label falls back to the field's most frequent training
    label and is counted in `self.unparsed` (reported, so a weak model is not silently flattered).
    """

    method = "prompt"
    Config = PromptConfig

    def __init__(self, schema: TaskSchema, config: Any = None, lm=None):
        super().__init__(schema, config)
        self._lm = lm
        self.shots: list[tuple[str, dict]] = []
        self.fallback = {spec.name: spec.labels[0] for spec in schema.fields}
        self.unparsed = 0
        self.non_json = 0
        self.shortlister = None  # LabelShortlist when config.shortlist > 0 (built in fit / load)
        if self.config.shortlist < 0 or (self.config.shortlist and len(schema.fields) != 1):
            raise ClassifierError("shortlist must be 0 or a positive number of labels, and works on one-field tasks only")

    @property
    def lm(self):
        if self._lm is None:
            from igft.llm.factory import build_lm

            extra = {"base_url": self.config.base_url} if self.config.base_url else {}
            self._lm = build_lm(self.config.lm, mode=self.config.mode, cassette=self.config.cassette, **extra)
        return self._lm

    def fit(self, texts, targets, val_texts=(), val_targets=()) -> dict:
        """No training: pick few-shot examples (one per label of the first field first) and fallbacks."""
        for spec in self.schema.fields:
            counts = Counter(t[spec.name] for t in targets)
            if counts:
                self.fallback[spec.name] = counts.most_common(1)[0][0]
        rng = random.Random(self.config.seed)
        order = list(range(len(texts)))
        rng.shuffle(order)
        first = self.schema.fields[0].name
        chosen, seen = [], set()
        for i in order:  # cover labels first, then fill up
            if len(chosen) < self.config.shots and targets[i][first] not in seen:
                chosen.append(i)
                seen.add(targets[i][first])
        for i in order:
            if len(chosen) >= self.config.shots:
                break
            if i not in chosen:
                chosen.append(i)
        self.shots = [(texts[i], dict(targets[i])) for i in chosen]
        if self.config.shortlist:
            name = self.schema.fields[0].name
            self.shortlister = self._new_shortlist().fit(texts, [t[name] for t in targets], self.config.shortlist_per_label)
        return {"shots": len(self.shots)}

    def _new_shortlist(self):
        from igft.classify.shortlist import LabelShortlist
        from igft.llm.factory import build_embedder

        return LabelShortlist(build_embedder(self.config.shortlist_embedder), self.schema.fields[0].labels)

    def _schemas(self, texts: Sequence[str]) -> list[TaskSchema]:
        """The schema each text is prompted with: the task's, or its field cut to the text's shortlist."""
        if not self.config.shortlist:
            return [self.schema] * len(texts)
        from dataclasses import replace

        spec = self.schema.fields[0]
        return [replace(self.schema, fields=[replace(spec, labels=short)])
                for short in self.shortlister.top(texts, self.config.shortlist)]

    def predict(self, texts):
        from igft.llm.base import CompletionRequest

        out = []
        texts = list(texts)
        for text, schema in zip(texts, self._schemas(texts)):
            request = CompletionRequest(messages=tuple(chat_messages(schema, text, self.shots)),
                                        temperature=0.0, max_tokens=self.config.max_tokens, seed=self.config.seed)
            answer = self.lm.complete(request).text
            labels, strict = parse_answer(answer, schema)
            self.non_json += int(not strict)
            if any(v is None for v in labels.values()):
                self.unparsed += 1
                logger.debug("unparseable answer %r; using the most frequent labels", answer[:120])
            out.append({k: (v if v is not None else self.fallback[k]) for k, v in labels.items()})
        return out

    def save_files(self, out_dir: Path) -> None:
        state = {"shots": self.shots, "fallback": self.fallback}
        if self.shortlister is not None:
            state["shortlist_centroids"] = self.shortlister.centroids.tolist()
        (out_dir / "prompt.json").write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "PromptClassifier":
        clf = cls(schema, config)
        state = json.loads((in_dir / "prompt.json").read_text(encoding="utf-8"))
        clf.shots = [(t, d) for t, d in state["shots"]]
        clf.fallback = state["fallback"]
        if config.shortlist:
            clf.shortlister = clf._new_shortlist()
            clf.shortlister.centroids = np.array(state["shortlist_centroids"], dtype=np.float32)
        return clf
