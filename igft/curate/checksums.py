"""Checksum-validated finders for payment card numbers (Luhn) and IBANs (ISO 7064 mod 97-10).

A digit run alone is not a card number (order numbers, phone numbers, amounts are digit runs too), so a
candidate counts only when its checksum holds; this is what keeps precision high without a model.
Both finders return (start, end) character spans of `text`.
"""
from __future__ import annotations

import re

# Runs of digits split by single spaces or dashes ("4111 1111-1111 1111"): the groups a card is written in.
_DIGIT_RUN = re.compile(r"(?<![\w-])\d+(?:[ -]\d+)*(?![\w])")
_GROUP = re.compile(r"\d+")
CARD_LENGTHS = range(13, 20)

# Country code, 2 check digits, then 11-30 alphanumerics, optionally in groups of 4 split by spaces.
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])", re.IGNORECASE)
# Lengths per ISO 13616 registry for common countries; others only need 15-34 characters.
IBAN_LENGTHS = {"AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24,
                "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LT": 20,
                "LU": 20, "LV": 21, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19,
                "SK": 24}


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (every card scheme uses it)."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when `iban` (spaces allowed) has a plausible length and its mod-97 check equals 1."""
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)  # A=10 ... Z=35
    return int(number) % 97 == 1


def find_cards(text: str) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13-19 digit numbers, aligned on the groups they are written in.

    A run like "4111 1111 1111 1111 12" (card then expiry month) is searched for its longest valid
    sub-run of whole groups, so trailing digits do not hide the card.
    """
    spans = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end()) for g in _GROUP.finditer(run.group())]
        spans.extend(_longest_valid_subruns(text, groups))
    return spans


def _longest_valid_subruns(text: str, groups: list[tuple[int, int]]) -> list[tuple[int, int]]:
    found = []
    i = 0
    while i < len(groups):
        best = None
        for j in range(len(groups) - 1, i - 1, -1):
            digits = "".join(text[a:b] for a, b in groups[i:j + 1])
            if len(digits) in CARD_LENGTHS and luhn_valid(digits):
                best = j
                break
        if best is None:
            i += 1
        else:
            found.append((groups[i][0], groups[best][1]))
            i = best + 1
    return found


def find_ibans(text: str) -> list[tuple[int, int]]:
    """Spans of checksum-valid IBANs, written compact or in groups of four."""
    spans = []
    for match in _IBAN_CANDIDATE.finditer(text):
        candidate = match.group()
        # The candidate may run into a following word ("... 0130 00 thanks"): try it and its shorter
        # prefixes that end on a group boundary.
        for end in _prefix_ends(candidate):
            if iban_valid(candidate[:end]):
                spans.append((match.start(), match.start() + end))
                break
    return spans


def _prefix_ends(candidate: str) -> list[int]:
    ends = [len(candidate)] + [i for i in range(len(candidate) - 1, 14, -1) if candidate[i] == " "]
    return sorted(set(ends), reverse=True)
