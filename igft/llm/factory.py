"""Build an LM or Embedder from a spec string, wrapped as MeteredX(CassetteX(lazy backend)).

LM specs:        openai:MODEL | openai-compatible:URL:MODEL | local:smollm2 | local:igft-labeler | hf:PATH_OR_ID | scripted[:NAME]
Embedder specs:  openai:MODEL | openai-compatible:URL:MODEL | local:minilm | st:PATH_OR_ID | hashing

The cassette key uses the spec's model name (`openai:gpt-4o`, `openai-compatible:llama3`,
`local:smollm2`, `hf:PATH`), never the URL, so a recording made against one server replays anywhere.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from igft.errors import IgftError
from igft.llm.base import LM, Embedder, HashingEmbedder, ScriptedLM
from igft.llm.cassette import CassetteEmbedder, CassetteLM, check_mode
from igft.llm.usage import Budget, MeteredEmbedder, MeteredLM, UsageMeter

LM_SPEC_FORMS = "openai:MODEL, openai-compatible:URL:MODEL, local:smollm2, local:igft-labeler, hf:PATH_OR_ID, scripted[:NAME]"
EMBEDDER_SPEC_FORMS = "openai:MODEL, openai-compatible:URL:MODEL, local:minilm, st:PATH_OR_ID, hashing"


class SpecError(IgftError):
    """A model spec string is malformed."""


_COMPATIBLE_URL = re.compile(r"^(?P<url>https?://[^/:]+(?::\d+)?+(?:/[^:]*)?):(?P<model>.+)$")
# The key of an openai-compatible server is read from this variable (never OPENAI_API_KEY: that one
# must not travel to whatever host a URL names); unset means no key, which local servers accept.
COMPATIBLE_KEY_ENV = "OPENAI_COMPATIBLE_API_KEY"


def redacted_spec(spec: str, *, embedder: bool = False) -> str:
    """The spec without its endpoint (`openai-compatible:MODEL`), for files that are shared or committed."""
    parsed = parse_spec(spec, embedder=embedder)
    return parsed.name if parsed.backend == "openai-compatible" else spec


@dataclass(frozen=True)
class ParsedSpec:
    backend: str  # openai | openai-compatible | local | hf | st | scripted | hashing
    model_id: str  # what the backend loads or sends as `model`
    name: str  # the stable name used in cassette keys and usage tables
    base_url: str | None = None


def parse_spec(spec: str, *, embedder: bool = False) -> ParsedSpec:
    """Parse a spec string; raise SpecError naming the valid forms."""
    forms = EMBEDDER_SPEC_FORMS if embedder else LM_SPEC_FORMS
    kind = "embedder" if embedder else "LLM"
    spec = (spec or "").strip()
    fake = "hashing" if embedder else "scripted"
    if spec == fake:
        return ParsedSpec(fake, fake, fake)
    backend, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SpecError(f"unknown {kind} spec {spec!r}; valid forms: {forms}")
    if backend == "openai":
        return ParsedSpec("openai", rest, f"openai:{rest}")
    if backend == "openai-compatible":
        if not rest.startswith(("http://", "https://")):
            # The URL-less form names the model only (what run.json keeps): enough to replay a cassette.
            if not rest or rest.startswith(":"):
                raise SpecError(f"bad {kind} spec {spec!r}; write openai-compatible:URL:MODEL (valid forms: {forms})")
            return ParsedSpec("openai-compatible", rest, f"openai-compatible:{rest}", base_url=None)
        # scheme://host[:port][/path] then ':' then the model, which may itself hold colons
        # (ft:gpt-4o-mini:org::id, llama3:8b): the URL ends at the first colon after its host part.
        match = _COMPATIBLE_URL.match(rest)
        if not match or not match.group("model"):
            raise SpecError(f"bad {kind} spec {spec!r}; write openai-compatible:URL:MODEL, "
                            f"e.g. openai-compatible:http://localhost:8000/v1:llama3 (valid forms: {forms})")
        model = match.group("model")
        return ParsedSpec("openai-compatible", model, f"openai-compatible:{model}", base_url=match.group("url"))
    if not embedder and backend == "local":
        if rest.lower() in {"igft-labeler"}:  # the bundled SmolLM2 + igft's shipped GIFA-labeler adapter
            return ParsedSpec("local", "local:igft-labeler", "local:igft-labeler")
        if rest.lower() not in {"smollm2", "smollm2-135m", "smollm2-135m-instruct"}:
            raise SpecError(f"unknown local LLM {rest!r}; the bundled ones are local:smollm2 and "
                            f"local:igft-labeler (valid forms: {forms})")
        return ParsedSpec("local", "local:smollm2", "local:smollm2")
    if not embedder and backend == "scripted":  # a second, differently named fake (e.g. a search's GIFA LLM in tests)
        return ParsedSpec("scripted", spec, spec)
    if not embedder and backend == "hf":
        return ParsedSpec("hf", rest, f"hf:{rest}")
    if embedder and backend == "local":
        if rest.lower() not in {"minilm", "all-minilm-l6-v2"}:
            raise SpecError(f"unknown local embedder {rest!r}; the bundled one is local:minilm (valid forms: {forms})")
        return ParsedSpec("local", "minilm", "local:minilm")
    if embedder and backend == "st":
        return ParsedSpec("st", rest, f"st:{rest}")
    raise SpecError(f"unknown {kind} spec {spec!r}; valid forms: {forms}")


def _pick(kw: dict, *names: str) -> dict:
    return {k: kw[k] for k in names if k in kw}


_OPENAI_KW = ("api_key", "api_key_env", "timeout", "max_attempts", "max_retries", "backoff", "max_backoff", "max_concurrency",
              "sleep", "organization", "max_tokens_param", "extra_body", "batch_size")


def _openai_kwargs(parsed: ParsedSpec, kw: dict) -> dict:
    """Backend options for an OpenAI(-compatible) client; the compatible one never reads OPENAI_API_KEY."""
    options = _pick(kw, *_OPENAI_KW)
    options["base_url"] = parsed.base_url or kw.get("base_url")
    if parsed.backend == "openai-compatible":
        if not options["base_url"]:
            raise SpecError(f"{parsed.name} has no server URL; to call it live write "
                            f"openai-compatible:URL:{parsed.model_id} (e.g. http://localhost:8000/v1; valid forms: {LM_SPEC_FORMS})")
        if options.get("api_key_env") is None:
            options["api_key_env"] = COMPATIBLE_KEY_ENV
    elif options.get("api_key_env") is None:
        options.pop("api_key_env", None)
    return options


def _lm_factory(parsed: ParsedSpec, kw: dict) -> Callable[[], LM]:
    if parsed.backend == "scripted":
        script = kw.get("script", lambda request: "ok")
        return lambda: ScriptedLM(script, model=parsed.name)
    if parsed.backend in ("openai", "openai-compatible"):
        def make() -> LM:
            from igft.llm.openai_backend import OpenAIChatLM

            return OpenAIChatLM(parsed.model_id, name=parsed.name, **_openai_kwargs(parsed, kw))
        return make

    def make_local() -> LM:
        from igft.llm.local_backend import LocalHFLM

        path = parsed.model_id
        if path == "local:igft-labeler":
            from igft.llm.local_models import labeler_adapter_path

            path = str(labeler_adapter_path())  # raises one clear error when the adapter files are missing
        return LocalHFLM(path, model=parsed.name, **_pick(kw, "device"))
    return make_local


def _embedder_factory(parsed: ParsedSpec, kw: dict) -> Callable[[], Embedder]:
    if parsed.backend == "hashing":
        return lambda: HashingEmbedder(**_pick(kw, "dim"), model=parsed.name)
    if parsed.backend in ("openai", "openai-compatible"):
        def make() -> Embedder:
            from igft.llm.openai_backend import OpenAIEmbedder

            return OpenAIEmbedder(parsed.model_id, name=parsed.name, **_openai_kwargs(parsed, kw))
        return make

    def make_local() -> Embedder:
        from igft.llm.local_backend import SentenceTransformerEmbedder

        path = None if parsed.backend == "local" else parsed.model_id
        return SentenceTransformerEmbedder(path, model=parsed.name, **_pick(kw, "device", "batch_size"))
    return make_local


def build_lm(spec: str, *, mode: str = "live", cassette: str | os.PathLike | None = None,
             usage: UsageMeter | None = None, budget: Budget | None = None, **kw: Any) -> MeteredLM:
    """An LM for `spec`: metered, recorded/replayed through `cassette` per `mode`.

    In replay mode the backend is never constructed (no weights, key or network needed). Backend
    options pass through `kw` (OpenAI: api_key_env, timeout, max_retries, max_concurrency, ...;
    local/hf: device; scripted: script). The result exposes `.meter` (a UsageMeter).
    """
    parsed = parse_spec(spec)
    check_mode(mode, cassette)
    factory = _lm_factory(parsed, kw)
    inner = factory() if mode == "live" else CassetteLM(factory, cassette, mode, model=parsed.name)
    return MeteredLM(inner, usage, budget)


def build_embedder(spec: str, *, mode: str = "live", cassette: str | os.PathLike | None = None,
                   usage: UsageMeter | None = None, budget: Budget | None = None, **kw: Any) -> MeteredEmbedder:
    """An Embedder for `spec`, metered and recorded/replayed per text through `cassette` per `mode`."""
    parsed = parse_spec(spec, embedder=True)
    check_mode(mode, cassette)
    factory = _embedder_factory(parsed, kw)
    inner = factory() if mode == "live" else CassetteEmbedder(factory, cassette, mode, model=parsed.name)
    return MeteredEmbedder(inner, usage, budget)
