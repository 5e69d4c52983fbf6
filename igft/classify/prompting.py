"""The classification prompt (taxonomy in the system prompt, JSON answer) and a forgiving answer parser.

One system prompt serves the generative fine-tune, the zero-/few-shot baseline and the OpenAI
fine-tuning export, so a model fine-tuned on the export is evaluated with the prompt it learned.
"""
from __future__ import annotations

import json
import re
from typing import Sequence

from igft.classify.task import TaskSchema, json_answer, taxonomy_text


def system_prompt(schema: TaskSchema, with_labels: bool = True) -> str:
    """Task instruction + label sets + the exact JSON shape to answer with.

    `with_labels=False` leaves the label sets out (a fine-tuned model that learned the label names, decoded
    under a constraint to the label set): a 150-intent taxonomy is ~1,500 prompt tokens per row otherwise.
    """
    example = json_answer({f.name: f.labels[0] for f in schema.fields}, schema.field_names)
    intro = schema.instruction or ("Classify the customer's message." if len(schema.fields) == 1
                                   else "Classify the customer's message in every field below.")
    if not with_labels:
        return f"{intro}\nAnswer with JSON only, one label per field, e.g. {example}"
    return (f"{intro}\nAllowed labels per field:\n{taxonomy_text(schema)}\n"
            f"Answer with JSON only, one allowed label per field, e.g. {example}")


def chat_messages(schema: TaskSchema, text: str, shots: Sequence[tuple[str, dict]] = ()) -> list[dict]:
    """System prompt, optional few-shot (user, assistant) turns, then the text to classify."""
    messages = [{"role": "system", "content": system_prompt(schema)}]
    for shot_text, shot_target in shots:
        messages.append({"role": "user", "content": shot_text})
        messages.append({"role": "assistant", "content": json_answer(shot_target, schema.field_names)})
    messages.append({"role": "user", "content": text})
    return messages


def _normalise(label: str) -> str:
    return re.sub(r"[^0-9a-zäöüß]+", "", label.lower())


def match_label(value: str, labels: Sequence[str]) -> str | None:
    """Map a model's answer to an allowed label: exact, case/punctuation-insensitive, then longest contained."""
    value = str(value).strip()
    if value in labels:
        return value
    norm = _normalise(value)
    by_norm = {_normalise(label): label for label in labels}
    if norm in by_norm:
        return by_norm[norm]
    lowered = value.lower()
    contained = [label for label in labels if _label_pattern(label).search(lowered)]
    return max(contained, key=len) if contained else None


def _label_pattern(label: str) -> "re.Pattern":
    """The label as a whole word, with _ - and space interchangeable ('late checkout' finds late_checkout)."""
    parts = [re.escape(p) for p in re.split(r"[_\-\s]+", label.lower()) if p]
    return re.compile(r"(?<![0-9a-zäöüß])" + r"[_\-\s]+".join(parts) + r"(?![0-9a-zäöüß])")


def parse_answer(text: str, schema: TaskSchema) -> tuple[dict[str, str | None], bool]:
    """(labels per field or None, strict) -- strict when the text was JSON with an allowed label in every field."""
    parsed: dict = {}
    match = re.search(r"\{.*\}", text, flags=re.S)
    if match:
        try:
            loaded = json.loads(match.group(0))
            parsed = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            parsed = {}
    out: dict[str, str | None] = {}
    strict = bool(parsed)
    for spec in schema.fields:
        if spec.name in parsed and str(parsed[spec.name]) in spec.labels:
            out[spec.name] = str(parsed[spec.name])
            continue
        strict = False
        candidate = parsed.get(spec.name)
        found = match_label(candidate, spec.labels) if candidate is not None else None
        if found is None and len(schema.fields) == 1:
            found = match_label(text, spec.labels)  # plain-text answers like "Intent: late_checkout"
        out[spec.name] = found
    return out, strict
