"""Method `general`: one LLM call per conversation writes a one-line description of each new intent.

The descriptions then stand beside the names in later prompts, so a model can reuse an intent by its
meaning rather than by its wording alone. A description the model does not give stays empty (the
labeling itself never fails because of a description).
"""
from __future__ import annotations

import logging
import re
from typing import Mapping, Sequence

from igft.gifa.parser import normalize_name
from igft.gifa.prompts import build_description_prompt
from igft.llm.base import Completion, CompletionRequest, LM

logger = logging.getLogger(__name__)

_LINE = re.compile(r"^\s*(?:[-*•]\s*|\d+[.)]\s*)?[`*\"']*([A-Za-z][A-Za-z0-9_ \-]*?)[`*\"']*\s*[:\-–—]\s+(.+?)\s*$")
MAX_DESCRIPTION_CHARS = 200


def description_request(new_intents: Mapping[str, Sequence[str]], *, max_tokens_per_intent: int = 40,
                        seed: int | None = None) -> CompletionRequest:
    """The request that asks for descriptions of these intents (values: example messages)."""
    return CompletionRequest.from_prompt(build_description_prompt(new_intents), temperature=0.0,
                                         max_tokens=16 + max_tokens_per_intent * len(new_intents), seed=seed)


def parse_descriptions(text: str, names: Sequence[str]) -> dict[str, str]:
    """`name: description` lines -> {name: description} for the requested names only."""
    wanted = set(names)
    found: dict[str, str] = {}
    for line in str(text).splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        name = normalize_name(match.group(1))
        if name in wanted and name not in found:
            found[name] = " ".join(match.group(2).split())[:MAX_DESCRIPTION_CHARS]
    return found


def describe_intents(lm: LM, new_intents: Mapping[str, Sequence[str]], *, max_tokens_per_intent: int = 40,
                     seed: int | None = None) -> tuple[dict[str, str], Completion | None]:
    """Descriptions for new intents (missing ones map to ""), and the completion (None when no call)."""
    if not new_intents:
        return {}, None
    completion = lm.complete(description_request(new_intents, max_tokens_per_intent=max_tokens_per_intent, seed=seed))
    found = parse_descriptions(completion.text, list(new_intents))
    missing = [n for n in new_intents if n not in found]
    if missing:
        logger.info("no description given for %d intent(s): %s", len(missing), missing[:5])
    return {name: found.get(name, "") for name in new_intents}, completion
