"""Redaction recall and precision per entity type on seeded synthetic conversations with planted PII.

    python benchmarks/redaction.py [--conversations 300] [--seed 0] [--ner-model NAME_OR_PATH]

Data: seeded customer-support conversations (templates below) in which e-mail addresses, phone
numbers (US/UK/DE/FR formats, valid per libphonenumber's numbering plans, as real ones are), Luhn-valid
card numbers (Visa/Mastercard/Amex prefixes, grouped or compact), checksum-valid IBANs (DE/GB/FR/NL/ES;
grouped or compact, 10% lower case; e-mails 10% upper case),
URLs, IPv4/IPv6 addresses and person names are planted, some repeated within a conversation, beside
distractors that are not PII: order numbers, amounts, dates, times, non-Luhn 16-digit ticket numbers,
version strings, tracking codes. Nothing is taken from a real person.

A planted value counts as found when a detection of the same type covers all of it (a partial hit
leaks the rest). A detection is a true positive when it overlaps a planted value of its type. Also
prints: planted values still present in the redacted text (leaks), whether placeholders were
consistent within each conversation (same value -> same placeholder, different values -> different
ones), and messages per second. PERSON is measured only when a NER model is available.
"""
from __future__ import annotations

import argparse
import random
import string
import time
from collections import Counter, defaultdict

from igft.curate.detect import DetectorConfig, PiiDetector
from igft.curate.redact import PlaceholderBook, Redactor

FIRST = ["Maria", "James", "Aisha", "Lukas", "Chen", "Sofia", "Olivier", "Priya", "Tomasz", "Emma", "Kenji", "Fatima"]
LAST = ["Garcia", "Smith", "Khan", "Muller", "Wang", "Rossi", "Dubois", "Patel", "Nowak", "Jones", "Tanaka", "Haddad"]
DOMAINS = ["example.com", "mail.example.org", "shop-example.co.uk", "example.de", "inbox.example.io", "example.net"]

TEMPLATES = {
    "EMAIL": ["My email is {v}.", "Please send the invoice to {v} thanks", "You can reach me at {v} or by phone.",
              "I changed my address to {v} last week", "Is {v} the address on file?"],
    "PHONE": ["Call me on {v} after 5pm.", "My number is {v}", "You can text {v} if that's easier.",
              "The phone on the account is {v}, is that right?"],
    "CARD": ["I paid with card {v} yesterday.", "The card number is {v}", "Charge it to {v} please.",
             "It was billed to the card ending in... actually the full number is {v}."],
    "IBAN": ["Please refund to IBAN {v}.", "My bank account is {v}", "Send the money to {v}, thank you."],
    "URL": ["I found it on {v}", "The product page {v} says otherwise.", "See {v} for the screenshot."],
    "IP": ["The login came from {v} which isn't me.", "My router's address is {v}.", "Blocked IP: {v}"],
    "PERSON": ["Hi, this is {v} speaking.", "My name is {v}.", "The parcel is addressed to {v}.", "Thanks, {v}"],
}
DISTRACTORS = ["My order number is {order}.", "It cost ${amount} in total.", "It arrived on {date} at {time}.",
               "Ticket {ticket} is still open.", "I'm on app version {version}.", "Tracking code {tracking}.",
               "I ordered {qty} items on {date}.", "Could you check order {order} again?",
               "Hello, I have a problem with my delivery.", "Thanks for your help!"]
REPLIES = ["Thanks, let me check that for you.", "I've updated the details.", "Could you confirm that once more?",
           "I'm sorry about the trouble.", "Done, anything else?"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        candidate = body + check
        total = sum((int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 else int(c)
                    for i, c in enumerate(reversed(candidate)))
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def make_card(rng: random.Random) -> str:
    scheme = rng.choice(["visa", "mc", "amex"])
    if scheme == "amex":
        n = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [n[:4], n[4:10], n[10:]]
    else:
        n = luhn_complete("4" if scheme == "visa" else str(rng.randint(51, 55)), 16, rng)
        groups = [n[i:i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


IBAN_BBAN = {"DE": lambda r: _digits(r, 18), "GB": lambda r: "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + _digits(r, 14),
             "FR": lambda r: _digits(r, 23), "NL": lambda r: "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + _digits(r, 10),
             "ES": lambda r: _digits(r, 20)}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def make_iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_BBAN))
    bban = IBAN_BBAN[country](rng)
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban
    return iban.lower() if rng.random() < 0.1 else iban


def make_phone(rng: random.Random) -> str:
    import phonenumbers

    while True:
        kind = rng.choice(["us_paren", "us_dash", "us_dots", "us_compact", "us_intl", "uk_intl", "uk_intl_0",
                           "uk_national", "uk_mobile", "de_intl", "de_national", "fr_intl"])
        area = rng.choice(["212", "415", "617", "312", "206"])
        text, region = {
            "us_paren": (f"({area}) {rng.randint(200, 999)}-{_digits(rng, 4)}", "US"),
            "us_dash": (f"{area}-{rng.randint(200, 999)}-{_digits(rng, 4)}", "US"),
            "us_dots": (f"{area}.{rng.randint(200, 999)}.{_digits(rng, 4)}", "US"),
            "us_compact": (f"{area}{rng.randint(200, 999)}{_digits(rng, 4)}", "US"),
            "uk_intl_0": (f"+44 (0)20 {rng.randint(7000, 8999)} {_digits(rng, 4)}", "GB"),
            "de_national": (f"030 {_digits(rng, 8)}", "DE"),
            "us_intl": (f"+1 {area} {rng.randint(200, 999)} {_digits(rng, 4)}", "US"),
            "uk_intl": (f"+44 20 {rng.randint(7000, 8999)} {_digits(rng, 4)}", "GB"),
            "uk_national": (f"020 {rng.randint(7000, 8999)} {_digits(rng, 4)}", "GB"),
            "uk_mobile": (f"07{rng.randint(400, 999)} {_digits(rng, 6)}", "GB"),
            "de_intl": (f"+49 30 {_digits(rng, 8)}", "DE"),
            "fr_intl": (f"+33 1 {' '.join(_digits(rng, 2) for _ in range(4))}", "FR"),
        }[kind]
        if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
            return text


def make_value(entity_type: str, rng: random.Random) -> str:
    if entity_type == "EMAIL":
        user = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}".lower()
        email = user + ("+orders" if rng.random() < 0.1 else "") + "@" + rng.choice(DOMAINS)
        return email.upper() if rng.random() < 0.1 else email
    if entity_type == "PHONE":
        return make_phone(rng)
    if entity_type == "CARD":
        return make_card(rng)
    if entity_type == "IBAN":
        return make_iban(rng)
    if entity_type == "URL":
        domain = rng.choice(DOMAINS)
        return rng.choice([f"https://www.{domain}/item/{rng.randint(100, 9999)}", f"http://{domain}/help?id={rng.randint(1, 500)}",
                           f"https://{domain}/orders/{rng.randint(10000, 99999)}/status"])
    if entity_type == "IP":
        if rng.random() < 0.8:
            return ".".join(str(rng.randint(1, 254)) for _ in range(4))
        return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def distractor(rng: random.Random) -> str:
    ticket = _digits(rng, 16)
    while sum((int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 else int(c) for i, c in enumerate(reversed(ticket))) % 10 == 0:
        ticket = _digits(rng, 16)
    return rng.choice(DISTRACTORS).format(
        order=rng.randint(10000, 999999), amount=f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
        date=f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024", time=f"{rng.randint(8, 20)}:{rng.choice(['00', '15', '30', '45'])}",
        ticket=" ".join(ticket[i:i + 4] for i in range(0, 16, 4)), version=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        tracking=f"1Z{_digits(rng, 6)}{rng.choice(string.ascii_uppercase)}{_digits(rng, 9)}", qty=rng.randint(2, 12))


def make_conversations(n: int, types: list[str], seed: int):
    """[(messages, planted)] per conversation: messages are texts, planted[k] = [(start, end, type, value)]."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pool = {t: [make_value(t, rng) for _ in range(2)] for t in types}  # a repeated value is likely
        messages, planted = [], []
        for turn in range(rng.randint(4, 8)):
            if turn % 2:
                messages.append(rng.choice(REPLIES)), planted.append([])
                continue
            parts, spans, cursor = [], [], 0
            for _ in range(rng.choice([0, 1, 1, 2])):
                entity_type = rng.choice(types)
                value = rng.choice(pool[entity_type])
                template = rng.choice(TEMPLATES[entity_type])
                prefix = template[:template.index("{v}")]
                start = cursor + len(prefix)
                spans.append((start, start + len(value), entity_type, value))
                sentence = template.format(v=value) + " "
                parts.append(sentence)
                cursor += len(sentence)
            parts.append(distractor(rng))
            messages.append("".join(parts)), planted.append(spans)
        out.append((messages, planted))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ner-model", help="spaCy NER pipeline for PERSON (default: en_core_web_sm if installed)")
    args = parser.parse_args()

    detector = PiiDetector(DetectorConfig(ner_model=args.ner_model))
    types = list(detector.entity_types)
    conversations = make_conversations(args.conversations, types, args.seed)
    redactor = Redactor(detector=detector)
    found, planted_total, true_pos, detected, leaks = Counter(), Counter(), Counter(), Counter(), Counter()
    consistent, checked = 0, 0
    n_messages = sum(len(m) for m, _ in conversations)
    start = time.perf_counter()
    for messages, planted in conversations:
        book = PlaceholderBook()
        by_value: dict[tuple[str, str], set[str]] = defaultdict(set)
        for text, spans in zip(messages, planted):
            detections = detector.find(text)
            for d in detections:
                detected[d.entity_type] += 1
                true_pos[d.entity_type] += any(d.entity_type == t and d.start < e and s < d.end for s, e, t, _ in spans)
            for s, e, t, value in spans:
                planted_total[t] += 1
                found[t] += any(d.entity_type == t and d.start <= s and d.end >= e for d in detections)
            redacted = redactor.apply(text, detections, book) if detections else text
            for s, e, t, value in spans:
                leaks[t] += value in redacted
                hits = [d for d in detections if d.entity_type == t and d.start <= s and d.end >= e]
                if hits:
                    by_value[(t, value)].add(book.placeholder_for(t, text[hits[0].start:hits[0].end]))
        # consistent: each value -> one placeholder, and no two values share one
        checked += 1
        flat = [p for ps in by_value.values() for p in ps]
        consistent += all(len(ps) == 1 for ps in by_value.values()) and len(flat) == len(set(flat))
    seconds = time.perf_counter() - start
    print(f"data: {args.conversations} seeded conversations (seed {args.seed}), {n_messages} messages, "
          f"{sum(planted_total.values())} planted values; detector: Presidio {_presidio_version()} offline + Luhn/mod-97")
    print(f"{'type':<7} {'planted':>7} {'recall':>7} {'detected':>8} {'precision':>9} {'leaked':>6}")
    for t in types:
        recall = found[t] / planted_total[t] if planted_total[t] else float("nan")
        precision = true_pos[t] / detected[t] if detected[t] else float("nan")
        print(f"{t:<7} {planted_total[t]:>7} {recall:>7.3f} {detected[t]:>8} {precision:>9.3f} {leaks[t]:>6}")
    for t, reason in detector.not_covered.items():
        print(f"{t:<7} not covered: {reason}")
    print(f"placeholders consistent within the conversation: {consistent}/{checked} conversations")
    print(f"speed: {n_messages / seconds:.0f} messages/s (detection + placeholder replacement, one process)")


def _presidio_version() -> str:
    from importlib.metadata import version

    return version("presidio-analyzer")


if __name__ == "__main__":
    main()
