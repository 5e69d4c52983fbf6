"""Parse an LLM's answer into one snake_case intent per message.

Models drift from the `N. intent_name` protocol in predictable ways: other numbering styles (`1)`,
`(1)`, `1:`, `#1`, `[1]`), bullets, markdown bold, backticks or quotes around the name, an `intent:`
prefix, a preamble ("Here are the intents:"), CamelCase or space-separated names. We accept those
and reject what cannot be read as one intent per message. The only exception this module raises for
any input text is `ParseError` (a fuzz test holds it to that).
"""
from __future__ import annotations

import re

from igft.errors import IgftError

MAX_NAME_LENGTH = 64
MAX_NAME_WORDS = 8
# Words that name a speaker or the protocol's placeholder, not a purpose: a model that copies the
# conversation ("1. customer: hi") or the format ("1. intent_name") must fail, not create junk intents.
REJECTED_NAMES = frozenset({"customer", "assistant", "user", "agent", "system", "intent", "intent_name",
                            "intents", "message", "label", "name"})

# Optional bullet, then a number in one of the usual wrappers, then an optional separator.
_NUMBERED = re.compile(
    r"""^\s*(?:[-*•+]\s+)?            # bullet before the number ("- 1. x")
        (?:(?:message|msg|line)\s*)?  # "Message 1: x"
        (?:\#\s*)?                    # "#1 x"
        [(\[]?\s*([0-9]{1,4})\s*[)\]]?   # 1 / (1) / [1] / 1)
        \s*(?:[.:)\-–—=>]+\s*|\s+|$)  # separator: ". " ": " ") " " - " or plain space
        (.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_BULLET = re.compile(r"^\s*[-*•+]\s+(.*)$")
_PREFIX = re.compile(r"^(?:intent|label|intent_name|intent name)\s*[:=\-–]\s*", re.IGNORECASE)
_ARROW = re.compile(r"\s*(?:->|=>|→|⇒)\s*")
_WRAPPERS = [("`", "`"), ('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("[", "]"), ("(", ")"),
             ("<", ">"), ("{", "}"), ("**", "**"), ("*", "*"), ("_", "_")]
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
# Words joined by spaces or by one _ - / each; " - " is a prose separator, not part of a name.
_WORDS = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:(?: +|_+|[\-/])[A-Za-z0-9]+)*$")
_CAMEL_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TRAILING_PROSE = re.compile(r"\s+(?:-|–|—|:)\s+|:\s+|\s+\(")


class ParseError(IgftError):
    """The answer cannot be read as exactly one valid intent per message.

    `kind` is one of "empty", "count_mismatch", "numbering", "invalid_name"; `detail` is a short
    human-readable reason (the offending line, the counts).
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def normalize_name(raw: str) -> str | None:
    """snake_case form of a candidate intent name, or None when it is not a clean name.

    Accepts snake_case, CamelCase/PascalCase and a few words joined by spaces, hyphens or slashes
    ("Ask Order Status" -> ask_order_status). Anything with other punctuation is prose, not a name.
    """
    text = raw.strip()
    if not text or len(text) > 2 * MAX_NAME_LENGTH or not _WORDS.match(text):
        return None
    words: list[str] = []
    for chunk in re.split(r"[ _\-/]+", text):
        parts = [chunk] if chunk.islower() or chunk.isdigit() else _CAMEL_SPLIT.findall(chunk)
        words.extend(p.lower() for p in parts if p)
    if not words or len(words) > MAX_NAME_WORDS:
        return None
    name = "_".join(words)
    if len(name) > MAX_NAME_LENGTH or not _SNAKE.match(name) or name in REJECTED_NAMES:
        return None
    return name


def _unwrap(text: str) -> str:
    text = text.strip().rstrip(".,;!").strip()
    changed = True
    while changed and text:
        changed = False
        for left, right in _WRAPPERS:
            if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text = text[len(left):-len(right)].strip().rstrip(".,;!").strip()
                changed = True
        stripped = _PREFIX.sub("", text)
        if stripped != text:
            text, changed = stripped.strip(), True
    return text


def extract_name(item: str) -> str | None:
    """The intent named by the text after a line's number, or None.

    Tries the whole text, then the part after an arrow ("customer: hi -> greeting"), then the head
    before trailing prose ("greeting - the customer says hello", "greeting (opening)").
    """
    bare = item.strip()
    if len(bare) <= MAX_NAME_LENGTH and _SNAKE.match(bare) and bare not in REJECTED_NAMES \
            and bare.count("_") < MAX_NAME_WORDS:
        return bare  # already a clean snake_case name: the common case, no unwrapping needed
    text = _unwrap(item)
    candidates = [text]
    if _ARROW.search(text):
        candidates.append(_unwrap(_ARROW.split(text)[-1]))
    head = _TRAILING_PROSE.split(text, maxsplit=1)[0]
    if head != text:
        candidates.append(_unwrap(head))
    for candidate in candidates:
        name = normalize_name(candidate)
        if name:
            return name
    return None


def _split_items(text: str) -> list[tuple[int | None, str, str]]:
    """(number or None, rest, original line) for numbered lines; else bullets; else bare lines."""
    numbered, bullets, bare = [], [], []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("```"):
            continue
        line = line.replace("**", "")  # markdown bold, around numbers or names, never part of either
        match = _NUMBERED.match(line)
        if match and match.group(2).strip():
            numbered.append((int(match.group(1)), match.group(2), line))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            bullets.append((None, bullet.group(1), line))
        else:
            bare.append((None, line, line))
    if numbered:
        return numbered
    if bullets:
        return bullets
    # No list at all: a bare line counts only when it is a name by itself (prose has spaces/punctuation).
    return [item for item in bare if _is_single_token_name(_unwrap(item[1]))]


def _is_single_token_name(text: str) -> bool:
    return " " not in text and normalize_name(text) is not None


def _order_numbered(items: list[tuple[int | None, str, str]], n_expected: int) -> list[tuple[int | None, str, str]]:
    """Items in message order; accepts 1..n or 0..n-1 in any order, a repeated number keeps its first line."""
    first: dict[int, tuple[int | None, str, str]] = {}
    for item in items:
        first.setdefault(int(item[0]), item)
    numbers = sorted(first)
    if numbers == list(range(1, len(numbers) + 1)) or numbers == list(range(0, len(numbers))):
        return [first[k] for k in numbers]
    raise ParseError("numbering", f"message numbers {numbers[:12]} are not 1..{len(numbers)}"
                     + (f" (expected {n_expected} messages)" if n_expected else ""))


def parse_intents(text: str, n_expected: int) -> list[str]:
    """Exactly `n_expected` snake_case intents, in message order, or ParseError.

    `n_expected` must be positive (a programming error raises ValueError before any parsing).
    """
    if not isinstance(n_expected, int) or n_expected < 1:
        raise ValueError(f"n_expected must be a positive int, got {n_expected!r}")
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty", "the answer is empty")
    items = _split_items(text)
    if not items:
        raise ParseError("count_mismatch", f"expected {n_expected} intent lines, found none")
    if items[0][0] is not None:
        items = _order_numbered(items, n_expected)
    if len(items) != n_expected:
        raise ParseError("count_mismatch", f"expected {n_expected} intent lines, got {len(items)}")
    names = []
    for _, rest, line in items:
        name = extract_name(rest)
        if name is None:
            raise ParseError("invalid_name", f"not a snake_case intent name: {line.strip()[:120]!r}")
        names.append(name)
    return names
