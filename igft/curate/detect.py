"""Find PII spans with Microsoft Presidio's analyzer, run fully offline, plus igft's checksum finders.

Presidio's recognizers for e-mail, phone (libphonenumber), URL and IP address are rules, so they need
no model; its default set-up still loads a spaCy pipeline (downloaded from a hub) for tokens and
names. Here the NLP engine is a blank English spaCy pipeline (a tokenizer, no weights), so nothing is
downloaded. Person names need a statistical NER model: when one is installed (`ner_model`, or
`en_core_web_sm` if present) Presidio's SpacyRecognizer covers PERSON, otherwise PERSON is reported as
not covered and asking for it is an error. Cards and IBANs use igft's own Luhn / mod-97 finders.

tldextract (used by Presidio to check e-mail domains) fetches the public suffix list from the network
on first use; the detector points it at the snapshot it ships, so redaction never opens a connection.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

from igft.curate.checksums import find_cards, find_ibans
from igft.curate.entities import ENTITY_TYPES, CurateError

logger = logging.getLogger(__name__)

# Presidio's entity names -> igft's
PRESIDIO_TYPES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "URL": "URL", "IP_ADDRESS": "IP",
                  "PERSON": "PERSON", "CARD": "CARD", "IBAN": "IBAN"}
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU")  # US covers all of +1 (Canada too)
# Some numbering plans (e.g. Germany's) make 5-6 digit strings valid local numbers, which order numbers
# in support chats usually are; a phone a customer writes down has at least this many digits.
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15  # E.164's limit (country code included): a longer run is a ticket or account number
DEFAULT_NER_MODEL = "en_core_web_sm"


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity_type: str
    score: float


@dataclass
class DetectorConfig:
    entity_types: tuple[str, ...] | None = None  # None: every type that has a detector here
    ner_model: str | None = None  # spaCy pipeline name or path for PERSON; None: en_core_web_sm if installed
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS  # regions whose national formats count as phones
    min_score: float = 0.0  # drop Presidio results scored below this

    @staticmethod
    def field_help() -> dict[str, str]:
        return {"entity_types": "comma-separated types to redact (default: every type with a detector here): "
                                + ", ".join(ENTITY_TYPES),
                "ner_model": f"spaCy NER pipeline (name or path) for PERSON (default: {DEFAULT_NER_MODEL} if installed)",
                "phone_regions": "ISO regions whose national phone formats are recognised, e.g. US,GB,DE",
                "min_score": "drop detections scored below this (Presidio scores, 0-1)"}


def _use_bundled_suffix_list() -> None:
    """Make tldextract use its shipped public-suffix snapshot instead of fetching one (unless the user set a source)."""
    if os.environ.get("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS") is not None:
        return
    import tldextract.tldextract as tld

    if tld.TLD_EXTRACTOR.suffix_list_urls:
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _check_installed() -> None:
    try:
        import presidio_analyzer  # noqa: F401
        import presidio_anonymizer  # noqa: F401
        import spacy  # noqa: F401
    except ImportError as err:
        raise CurateError(f"redaction needs {err.name}: pip install presidio-analyzer presidio-anonymizer "
                          f"(both are igft dependencies; reinstall igft)") from err


def _phone_regions() -> set[str]:
    import phonenumbers

    return set(phonenumbers.SUPPORTED_REGIONS)


def _load_ner(name: str | None):
    """A spaCy pipeline with an NER component, or None when none is available (name=None) / raise when asked for."""
    import spacy

    candidate = name or DEFAULT_NER_MODEL
    if name is None and not spacy.util.is_package(candidate):
        return None
    try:
        nlp = spacy.load(candidate)
    except (OSError, ImportError, ValueError) as err:
        raise CurateError(f"cannot load spaCy NER model {candidate!r} ({err.__class__.__name__}); install a spaCy "
                          f"pipeline package or pass a folder with --ner-model") from err
    # A statistical 'ner' or a rule-based 'entity_ruler' (a name list) both set doc.ents, which Presidio reads.
    if not {"ner", "entity_ruler"} & set(nlp.pipe_names):
        raise CurateError(f"spaCy model {candidate!r} has no 'ner' or 'entity_ruler' component, so it cannot find person names")
    return nlp


class PiiDetector:
    """`find(text) -> [Span]`: non-overlapping PII spans of the configured types, in text order."""

    def __init__(self, config: DetectorConfig | None = None):
        config = config or DetectorConfig()
        self.config = config
        wanted = config.entity_types or tuple(ENTITY_TYPES)
        _check_installed()
        unknown_regions = sorted(set(config.phone_regions) - _phone_regions())
        if unknown_regions:
            raise CurateError(f"unknown phone region(s) {unknown_regions}; use ISO 3166 codes such as US, GB, DE")
        nlp = _load_ner(config.ner_model) if "PERSON" in wanted else None
        self.not_covered: dict[str, str] = {}
        if "PERSON" in wanted and nlp is None:
            reason = (f"person names need a spaCy NER pipeline such as {DEFAULT_NER_MODEL}, which no igft "
                      f"dependency ships; install one and pass --ner-model NAME_OR_PATH")
            if config.entity_types is not None:
                raise CurateError(f"no detector for PERSON here: {reason}, or drop PERSON from --entities")
            self.not_covered["PERSON"] = reason
        self.entity_types = tuple(t for t in wanted if t not in self.not_covered)
        self._analyzer = self._build_analyzer(nlp)

    def _build_analyzer(self, ner_nlp):
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import (EmailRecognizer, IpRecognizer, PhoneRecognizer,
                                                              SpacyRecognizer, UrlRecognizer)

        _use_bundled_suffix_list()
        nlp = ner_nlp if ner_nlp is not None else spacy.blank("en")

        class _GivenSpacyEngine(SpacyNlpEngine):
            # SpacyNlpEngine.load() would spacy.load() (and maybe download) a named model; use ours.
            def load(self) -> None:
                self.nlp = {"en": nlp}

        engine = _GivenSpacyEngine(models=[{"lang_code": "en", "model_name": "igft-offline"}])
        engine.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        recognizers = {"EMAIL": lambda: EmailRecognizer(),
                       "PHONE": lambda: PhoneRecognizer(supported_regions=tuple(self.config.phone_regions)),
                       "URL": lambda: UrlRecognizer(), "IP": lambda: IpRecognizer(),
                       "PERSON": lambda: SpacyRecognizer(supported_entities=["PERSON"]),
                       "CARD": lambda: _checksum_recognizer("CARD", find_cards),
                       "IBAN": lambda: _checksum_recognizer("IBAN", find_ibans)}
        for entity_type in self.entity_types:
            registry.add_recognizer(recognizers[entity_type]())
        return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])

    @property
    def presidio_entities(self) -> list[str]:
        back = {v: k for k, v in PRESIDIO_TYPES.items()}
        return [back[t] for t in self.entity_types]

    def find(self, text: str) -> list[Span]:
        if not text or not self.entity_types:
            return []
        others = [e for e in self.presidio_entities if e != "PHONE_NUMBER"]
        spans = self._analyze(text, others) if others else []
        if "PHONE" in self.entity_types:
            # libphonenumber reads a digit run as one number, so a phone written right before a card
            # number ("+44 20 7946 0958 4111 1111 ...") would be missed; blank out what was found first.
            masked = list(text)
            for span in spans:
                masked[span.start:span.end] = " " * (span.end - span.start)
            phones = self._analyze("".join(masked), ["PHONE_NUMBER"])
            spans += [s for s in phones
                      if MIN_PHONE_DIGITS <= sum(ch.isdigit() for ch in text[s.start:s.end]) <= MAX_PHONE_DIGITS]
        return resolve_overlaps(spans)

    def _analyze(self, text: str, entities: list[str]) -> list[Span]:
        results = self._analyzer.analyze(text, language="en", entities=entities)
        return [Span(r.start, r.end, PRESIDIO_TYPES[r.entity_type], float(r.score)) for r in results
                if r.score >= self.config.min_score and r.end > r.start]


def _checksum_recognizer(entity_type: str, finder):
    """A Presidio recognizer around one of igft's checksum finders (score 1.0: the checksum held)."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class ChecksumRecognizer(EntityRecognizer):
        def load(self) -> None:  # nothing to load: a pure function
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult(entity_type, start, end, 1.0) for start, end in finder(text)]

    return ChecksumRecognizer(supported_entities=[entity_type], name=f"igft_{entity_type.lower()}_checksum")


def resolve_overlaps(spans: Sequence[Span]) -> list[Span]:
    """Keep the best of overlapping spans (higher score, then longer), returned in text order.

    E.g. Presidio's URL rule also fires on the domain inside an e-mail address; the e-mail (score 1.0)
    wins, so the address becomes one {{EMAIL_n}} rather than a mix of two placeholders.
    """
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
