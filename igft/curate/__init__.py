"""Data curation before any third-party call: PII redaction, deduplication, synthetic examples for rare intents.

    igft.curate.entities  entity types, placeholders, CurateError
    igft.curate.checksums Luhn (cards) and mod-97 (IBAN) finders
    igft.curate.detect    PiiDetector: Presidio analyzer, offline, + the checksum finders
    igft.curate.redact    Redactor / redact_dataset: typed placeholders consistent within a conversation
    igft.curate.dedup     deduplicate: exact + MinHash near-duplicates of conversations and messages
    igft.curate.synth     synthesize: paraphrases of rare intents through igft.llm, marked synthetic
    igft.curate.marker    exclude_synthetic / only_synthetic / select_synthetic

Presidio, spaCy and datasketch are imported when first used, so `import igft.curate` stays light.
"""
from igft.curate.entities import ENTITY_TYPES, CurateError, parse_entity_types, placeholder
from igft.curate.marker import SYNTHETIC_CHOICES, exclude_synthetic, is_synthetic, only_synthetic, select_synthetic

_LAZY = {
    "PiiDetector": "igft.curate.detect", "DetectorConfig": "igft.curate.detect",
    "Redactor": "igft.curate.redact", "RedactionReport": "igft.curate.redact", "redact_dataset": "igft.curate.redact",
    "PlaceholderBook": "igft.curate.redact", "redact_before_calls": "igft.curate.redact",
    "DedupConfig": "igft.curate.dedup", "deduplicate": "igft.curate.dedup", "DuplicateIndex": "igft.curate.dedup",
    "normalise_text": "igft.curate.dedup",
    "SynthConfig": "igft.curate.synth", "synthesize": "igft.curate.synth", "rare_intents": "igft.curate.synth",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'igft.curate' has no attribute {name!r}")


__all__ = ["ENTITY_TYPES", "CurateError", "parse_entity_types", "placeholder", "SYNTHETIC_CHOICES",
           "exclude_synthetic", "is_synthetic", "only_synthetic", "select_synthetic", *_LAZY]
