"""igft's client layer: every LLM and embedding call goes through `build_lm` / `build_embedder`.

Backends (OpenAI-compatible HTTP, local HF models) are imported lazily, so replaying a cassette
never imports torch or the openai SDK.
"""
from igft.llm.errors import EndpointUnreachable, LLMRequestError, MissingAPIKey, RequestRejected
from igft.llm.base import (LM, Completion, CompletionRequest, Embedder, HashingEmbedder, ScriptedLM, ask,
                           request_key)
from igft.llm.cassette import (FORMAT_VERSION, CassetteEmbedder, CassetteFormatError, CassetteLM, CassetteMiss,
                               embedding_key)
from igft.llm.factory import EMBEDDER_SPEC_FORMS, LM_SPEC_FORMS, SpecError, build_embedder, build_lm, parse_spec
from igft.llm.usage import (DEFAULT_PRICES, Budget, BudgetExceeded, MeteredEmbedder, MeteredLM, UsageMeter,
                            register_price)

_LAZY = {
    "OpenAIChatLM": "igft.llm.openai_backend",
    "OpenAIEmbedder": "igft.llm.openai_backend",
    "LocalHFLM": "igft.llm.local_backend",
    "SentenceTransformerEmbedder": "igft.llm.local_backend",
    "MiniLMEmbedder": "igft.llm.local_backend",
    "LocalModelError": "igft.llm.local_backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'igft.llm' has no attribute {name!r}")


__all__ = [
    "LM", "Embedder", "Completion", "CompletionRequest", "ScriptedLM", "HashingEmbedder", "ask", "request_key",
    "CassetteLM", "CassetteEmbedder", "CassetteMiss", "CassetteFormatError", "FORMAT_VERSION", "embedding_key",
    "build_lm", "build_embedder", "parse_spec", "SpecError", "LM_SPEC_FORMS", "EMBEDDER_SPEC_FORMS",
    "UsageMeter", "Budget", "BudgetExceeded", "MeteredLM", "MeteredEmbedder", "register_price", "DEFAULT_PRICES",
    "LLMRequestError", "RequestRejected", "EndpointUnreachable", "MissingAPIKey", *_LAZY,
]
