"""The PII entity types igft redacts, their placeholders, and parsing of a user's `--entities` list."""
from __future__ import annotations

from typing import Iterable

from igft.errors import IgftError

# Order = report order. The value says what the type covers (shown in --help and error lines).
ENTITY_TYPES: dict[str, str] = {
    "EMAIL": "e-mail addresses",
    "PHONE": "phone numbers (valid per libphonenumber's numbering plans, national or international)",
    "CARD": "payment card numbers (13-19 digits, Luhn checksum)",
    "IBAN": "IBANs (ISO 13616, mod-97 checksum)",
    "URL": "web addresses",
    "IP": "IPv4 and IPv6 addresses",
    "PERSON": "person names (needs a spaCy NER pipeline; none ships with igft)",
}

# Accepted spellings -> canonical type (Presidio's names too, so their users need not relearn them).
ALIASES = {"EMAIL_ADDRESS": "EMAIL", "E-MAIL": "EMAIL", "PHONE_NUMBER": "PHONE", "TELEPHONE": "PHONE",
           "CREDIT_CARD": "CARD", "CREDIT_CARD_NUMBER": "CARD", "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP",
           "NAME": "PERSON", "PERSON_NAME": "PERSON"}


class CurateError(IgftError, ValueError):
    """Bad input to a curation step (unknown entity type, bad count, missing detector, ...)."""


def parse_entity_types(names: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """'email,phone' or ['EMAIL', 'PHONE'] -> ('EMAIL', 'PHONE') in canonical order; None stays None (= all)."""
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = []
    for raw in items:
        name = str(raw).strip().upper().replace(" ", "_")
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in ENTITY_TYPES:
            raise CurateError(f"unknown entity type {str(raw).strip()!r}; valid types: {', '.join(ENTITY_TYPES)}")
        wanted.append(name)
    if not wanted:
        raise CurateError(f"no entity type given; pass some of: {', '.join(ENTITY_TYPES)}")
    return tuple(t for t in ENTITY_TYPES if t in wanted)


def placeholder(entity_type: str, number: int) -> str:
    """The text that replaces the number-th distinct value of a type in one conversation: {{EMAIL_1}}."""
    return "{{" + f"{entity_type}_{number}" + "}}"
