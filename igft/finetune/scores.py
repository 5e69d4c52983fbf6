"""Reply and intent scores of generated outputs against references.

- BLEU: sacrebleu corpus BLEU (0-100).
- ROUGE-1/2/L: rouge-score F-measure with stemming, averaged over pairs (0-1).
- METEOR: NLTK's, with the wordnet data from NLTK's data path or Debian's `wordnet-base` +
  `wordnet-sense-index` packages (copied into igft's cache, nothing downloaded); otherwise reported unavailable (None + the reason).
- BERTScore F1: `bert_score.score` with the bundled all-MiniLM-L6-v2 (offline, layer 6, no baseline
  rescaling) and, when `bertscore_model` names a model the user has, with that one too. MiniLM
  BERTScores are NOT comparable with published (roberta-large) BERTScores.
- Embedding cosine: mean cosine similarity of reply / reference embeddings (MiniLM by default).
- Intents (intent+response): micro precision / recall / F1 over (sample, intent) pairs, macro F1 over
  samples, and exact match (predicted set == gold set).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for pred, ref in zip(predictions, references):
        result = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for k in totals:
            totals[k] += result[k].fmeasure
    n = max(len(predictions), 1)
    return {k: v / n for k, v in totals.items()}


DEBIAN_WORDNET = Path("/usr/share/wordnet")  # Debian/Ubuntu packages `wordnet-base` + `wordnet-sense-index`
_WORDNET_FILES = ("data.noun", "index.noun", "noun.exc", "index.sense")  # index.sense: wordnet-sense-index
# WordNet 3.0's lexicographer files in number order (documented in lexnames(5WN)). NLTK's reader needs a
# `lexnames` file that Debian's wordnet-base does not ship; its content is this fixed table.
LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
            "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
            "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
            "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
            "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
            "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
            "adj.ppl").split()
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _copy_debian_wordnet() -> Path | None:
    """Make Debian's WordNet 3.0 files visible to NLTK as corpora/wordnet (copied into igft's cache, ~30 MB).

    NLTK's reader needs the same files the Debian package installs (data.*, index.*, *.exc, lexnames),
    only at another path; nothing is downloaded."""
    if not all((DEBIAN_WORDNET / name).is_file() for name in _WORDNET_FILES):
        return None
    from igft.llm.local_models import cache_dir

    root = cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    import shutil

    # copies, not symlinks: NLTK refuses files whose real path lies outside its data folder
    for source in DEBIAN_WORDNET.iterdir():
        copy = target / source.name
        if source.is_file() and (not copy.exists() or copy.stat().st_size != source.stat().st_size):
            shutil.copyfile(source, copy)
    lexnames = target / "lexnames"
    if not lexnames.exists():
        lexnames.write_text("".join(f"{i:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
                                    for i, name in enumerate(LEXNAMES)), encoding="utf-8")
    return root


def meteor_status() -> str | None:
    """None when METEOR can run; otherwise the reason it cannot, with the fix."""
    try:
        import nltk
    except ImportError:
        return "NLTK is not installed (pip install nltk)"
    for attempt in range(2):
        try:
            nltk.data.find("corpora/wordnet")
            return None
        except LookupError:
            try:
                nltk.data.find("corpora/wordnet.zip")
                return None
            except LookupError:
                pass
        root = _copy_debian_wordnet() if attempt == 0 else None
        if root is None:
            break
        if str(root) not in nltk.data.path:
            nltk.data.path.append(str(root))
    return ("NLTK's wordnet data is not installed: install Debian's WordNet packages (apt-get install "
            "wordnet-base wordnet-sense-index; `make setup` does when it can) or run nltk.download('wordnet') on a machine with network")


def meteor_available() -> bool:
    return meteor_status() is None


def meteor(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """Mean sentence METEOR, or None when NLTK's wordnet data is not installed (see meteor_status)."""
    if not meteor_available():
        return None
    from nltk.translate.meteor_score import meteor_score
    vals = [meteor_score([ref.split()], pred.split()) for pred, ref in zip(predictions, references)]
    return float(np.mean(vals)) if vals else 0.0


def bertscore_f1(predictions: Sequence[str], references: Sequence[str], model: str | None = None,
                 num_layers: int | None = None, batch_size: int = 32) -> float:
    """Mean BERTScore F1. model None -> the bundled MiniLM (layer 6); else a model path/name the user has."""
    from bert_score import score as bert_score
    if model is None:
        from igft.llm.local_models import minilm_path
        model, num_layers = str(minilm_path()), num_layers or 6
    if not predictions:
        return 0.0
    # bert_score crashes on empty strings with transformers 5 (build_inputs_with_special_tokens is gone);
    # an empty reply or reference has no tokens to match: F1 0 for that pair.
    keep = [i for i, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
    if not keep:
        return 0.0
    _, _, f1 = bert_score([predictions[i] for i in keep], [references[i] for i in keep], model_type=model,
                          num_layers=num_layers, batch_size=batch_size, verbose=False,
                          device="cpu" if not _cuda() else None)
    return float(f1.sum()) / len(predictions)


def _cuda() -> bool:
    import torch
    return bool(torch.cuda.is_available())


def embedding_cosine(predictions: Sequence[str], references: Sequence[str], embedder: Any = None) -> float:
    """Mean cosine similarity of prediction/reference embeddings (igft Embedder; default bundled MiniLM)."""
    if not predictions:
        return 0.0
    if embedder is None:
        embedder = _minilm_embedder()
    a = np.asarray(embedder.embed(list(predictions)), dtype=np.float64)
    b = np.asarray(embedder.embed(list(references)), dtype=np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(a * b, axis=1)))


class _SentenceTransformerEmbedder:
    def __init__(self, path: str):
        from sentence_transformers import SentenceTransformer
        self.model = path
        self._st = SentenceTransformer(path, device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._st.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


def _minilm_embedder() -> _SentenceTransformerEmbedder:
    from igft.llm.local_models import minilm_path
    return _SentenceTransformerEmbedder(str(minilm_path()))


def intent_scores(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro P/R/F1 over (sample, intent) pairs, macro F1 over samples, exact-match rate.

    Both sides are compared in the parser's normal form (`normalize_intent`): generated names are
    normalised when parsed, and gold labels are free strings ("Request late check-out"), so the gold
    side gets the same normal form here."""
    from igft.finetune.parsing import normalize_intent

    tp = fp = fn = 0
    per_sample_f1, exact = [], 0
    for p, g in zip(predicted, gold):
        ps, gs = {normalize_intent(x) for x in p}, {normalize_intent(x) for x in g}
        hit = len(ps & gs)
        tp, fp, fn = tp + hit, fp + len(ps - gs), fn + len(gs - ps)
        exact += ps == gs
        denom = len(ps) + len(gs)
        per_sample_f1.append(1.0 if denom == 0 else 2 * hit / denom)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = max(len(gold), 1)
    return {"intent_precision": precision, "intent_recall": recall, "intent_f1": f1,
            "intent_macro_f1": float(np.mean(per_sample_f1)) if per_sample_f1 else 0.0,
            "intent_exact_match": exact / n}


def _parsed(p: Any) -> dict[str, Any]:
    return {"reply": p.reply, "intents": p.intents, "malformed": p.malformed}


def score_predictions(records: Sequence[dict[str, Any]], *, bertscore: bool = True, bertscore_model: str | None = None,
                      bertscore_layers: int | None = None, embedder: Any = None, cosine: bool = True) -> dict[str, Any]:
    """All scores of prediction records (as written by `igft generate`: reply, reference, intents, gold_intents)."""
    # Re-parse the raw outputs with the current parser, so old prediction files are scored the same way.
    from igft.finetune.parsing import parse_output
    records = [{**r, **_parsed(parse_output(r["output"], r.get("format", "response")))} if "output" in r else r
               for r in records]
    preds = [r.get("reply") or "" for r in records]
    refs = [r["reference"] for r in records]
    fmt = records[0].get("format", "response") if records else "response"
    out: dict[str, Any] = {"n": len(records), "format": fmt,
                           "n_malformed": sum(bool(r.get("malformed")) for r in records)}
    out["bleu"] = bleu(preds, refs) if records else 0.0
    out.update(rouge(preds, refs))
    m = meteor(preds, refs)
    out["meteor"] = m
    if m is None:
        out["meteor_unavailable"] = meteor_status()
    if bertscore:
        out["bertscore_f1"] = bertscore_f1(preds, refs)
        out["bertscore_model"] = "all-MiniLM-L6-v2 (layer 6, not comparable with published BERTScore)"
        if bertscore_model:
            out["bertscore_f1_named"] = bertscore_f1(preds, refs, model=bertscore_model, num_layers=bertscore_layers)
            out["bertscore_named_model"] = bertscore_model
    if cosine:
        out["embedding_cosine"] = embedding_cosine(preds, refs, embedder)
    if fmt == "intent+response":
        out.update(intent_scores([r.get("intents") or [] for r in records], [r.get("gold_intents") or [] for r in records]))
    return out
