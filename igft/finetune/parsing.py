"""Parse generated assistant outputs: strip `<think>` blocks, split intent+response outputs.

The intent+response target is `Intents:\\n- a\\n- b\\nResponses:\\n<reply>`. Small models drift from it
(missing headers, numbered lists, no intents); such outputs are flagged `malformed` with a reason and
parsed as well as possible, never raising, so a whole validation run is scored and the malformed
ones are counted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)
# Headers may be bold (**Intents:**); `[ \t]` keeps a match on one line.
_INTENTS_HEADER = re.compile(r"^[ \t]*\**[ \t]*intents?[ \t]*\**[ \t]*:[ \t]*\**[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_RESPONSES_HEADER = re.compile(r"^[ \t]*\**[ \t]*responses?[ \t]*\**[ \t]*:[ \t]*\**[ \t]*\n?", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


@dataclass
class ParsedOutput:
    intents: list[str]
    reply: str
    malformed: bool = False
    reasons: list[str] = field(default_factory=list)


def strip_think(text: str) -> str:
    """Remove `<think>...</think>` blocks (and an unterminated trailing `<think>...`)."""
    text = _THINK_BLOCK.sub("", text)
    text = _THINK_OPEN.sub("", text)
    return text.replace("</think>", "").strip()


def normalize_intent(name: str) -> str:
    """'- Request Refund.' -> 'request_refund' (the snake_case form GIFA and the gold labels use)."""
    name = _BULLET.sub("", name).strip().strip("`'\".,;:").strip()
    return re.sub(r"[\s\-]+", "_", name).lower()


def parse_intent_response(text: str) -> ParsedOutput:
    """Split an intent+response output into (intents, reply); malformed outputs are flagged, not raised."""
    text = strip_think(text)
    reasons: list[str] = []
    intents_match = _INTENTS_HEADER.search(text)
    responses_match = _RESPONSES_HEADER.search(text, intents_match.end() if intents_match else 0)
    if not intents_match:
        reasons.append("no 'Intents:' header")
    if not responses_match:
        reasons.append("no 'Responses:' header")
    intents: list[str] = []
    if intents_match:
        block_end = responses_match.start() if responses_match else len(text)
        inline = intents_match.group(1).strip()
        lines = [inline] if inline else []
        lines += text[intents_match.end():block_end].splitlines()
        if not responses_match:
            # Without a Responses header, the intent list ends at the first line that is not a bullet.
            bullets = []
            for line in lines:
                if line.strip() and not _BULLET.match(line) and bullets:
                    break
                bullets.append(line)
            lines = bullets
        for line in lines:
            for part in line.split(",") if not _BULLET.match(line) else [line]:
                name = normalize_intent(part)
                if name and name not in intents:
                    intents.append(name)
        if not intents:
            reasons.append("empty intent list")
    if responses_match:
        reply = text[responses_match.end():]
        # A model that failed to stop starts another "Intents:" block: the reply ends there.
        again = _INTENTS_HEADER.search(reply)
        if again:
            reply = reply[:again.start()]
            reasons.append("another 'Intents:' block after the reply")
        reply = reply.strip()
    elif intents_match:
        # Best effort: whatever follows the bullet lines is the reply.
        after = text[intents_match.end():].splitlines()
        rest = [l for l in after if l.strip() and not _BULLET.match(l)]
        reply = "\n".join(rest).strip()
    else:
        reply = text.strip()
    if not reply:
        reasons.append("empty reply")
    return ParsedOutput(intents, reply, bool(reasons), reasons)


def parse_output(text: str, fmt: str) -> ParsedOutput:
    """Parse a generated output of either SFT format (`response` outputs only lose their think blocks)."""
    if fmt == "intent+response":
        return parse_intent_response(text)
    reply = strip_think(text)
    return ParsedOutput([], reply, not reply, [] if reply else ["empty reply"])
