"""GIFA, the generative intent finding algorithm: LLM labeling conversation by conversation, reusing
intents of the most similar already-labeled messages.

`label_dataset(dataset, lm, embedder, GifaConfig(...))` returns an `igft.labeling.LabelingResult`;
`GifaConfig.instruction` is the text that the prompt-search backbones tune.
"""
from igft.gifa.catalog import IntentCatalog, RetrievalIndex
from igft.gifa.labeler import GifaConfig, GifaConfigError, label_dataset
from igft.gifa.progress import ProgressMismatch
from igft.gifa.parser import ParseError, parse_intents
from igft.gifa.prompts import METHODS, SEED_INSTRUCTION

__all__ = ["GifaConfig", "GifaConfigError", "IntentCatalog", "METHODS", "ParseError", "ProgressMismatch",
           "RetrievalIndex", "SEED_INSTRUCTION", "label_dataset", "parse_intents"]
