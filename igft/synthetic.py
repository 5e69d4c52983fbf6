"""Seeded synthetic customer-support conversations with gold intents, from 1k to 100k+ messages.

For tests and benchmarks of labelers, clustering and metrics at sizes the toy data cannot reach.
An intent is (action, object[, qualifier]), e.g. `report_refund` or `ask_delivery_date_garden`;
its messages come from the action's templates filled with one of the object's surface forms, the
qualifier's phrase and random slot fillers (order numbers, dates, amounts), so messages of one intent
share most of their words (embeddings recover them) without being identical. Intent frequencies
follow a Zipf law over a seeded ranking of the domain intents; greetings, thanks and goodbyes open
and close many conversations (and appear only there). Conversations have 6-12 messages, start with the customer and mostly alternate roles.
Everything comes from one `random.Random(seed)`: the same arguments give the same dataset.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

from igft.data import Conversation, Dataset, Message

CUSTOMER, ASSISTANT = "customer", "assistant"

# action -> (role, templates); {obj} is the object's surface form, {q} the qualifier phrase
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ask": (CUSTOMER, ("Can you tell me about {obj}{q}?", "I have a question about {obj}{q}.",
                       "Quick question regarding {obj}{q}.", "What is the situation with {obj}{q}?")),
    "report": (CUSTOMER, ("There is a problem with {obj}{q}.", "Something went wrong with {obj}{q}.",
                          "I think {obj}{q} is not right.", "I'm having trouble with {obj}{q}.")),
    "request": (CUSTOMER, ("I would like to request {obj}{q}.", "Could you arrange {obj}{q} for me?",
                           "Please send me {obj}{q}.", "Can I get {obj}{q}, please?")),
    "cancel": (CUSTOMER, ("I want to cancel {obj}{q}.", "Please stop {obj}{q}.", "How do I cancel {obj}{q}?")),
    "change": (CUSTOMER, ("I need to change {obj}{q}.", "Can you update {obj}{q}?", "I'd like to modify {obj}{q}.")),
    "complain": (CUSTOMER, ("I'm really unhappy about {obj}{q}.", "This is the second time {obj}{q} has gone wrong.",
                            "Honestly, {obj}{q} has been a disaster.")),
    "check": (CUSTOMER, ("Could you check {obj}{q} for me?", "Can you look up {obj}{q}?", "Would you verify {obj}{q}?")),
    "provide": (CUSTOMER, ("Here are the details for {obj}{q}: {detail}.", "Sure, for {obj}{q} it's {detail}.",
                           "The information on {obj}{q} is {detail}.")),
    "explain": (ASSISTANT, ("Let me explain how {obj}{q} works.", "Here is how we handle {obj}{q}.",
                            "About {obj}{q}: it usually takes {days} working days.")),
    "confirm": (ASSISTANT, ("I've processed {obj}{q} for you.", "All done, {obj}{q} is confirmed.",
                            "Good news: {obj}{q} has been taken care of.")),
    "offer": (ASSISTANT, ("I can help you with {obj}{q} right away.", "Would you like me to take care of {obj}{q}?",
                          "I could arrange {obj}{q} for you.")),
    "clarify": (ASSISTANT, ("Could you give me more details about {obj}{q}?", "What exactly happened with {obj}{q}?",
                            "Can you share a bit more information on {obj}{q}?")),
    "apologize": (ASSISTANT, ("I'm sorry about the trouble with {obj}{q}.", "Apologies for the inconvenience with {obj}{q}.",
                              "Sorry that {obj}{q} caused you problems.")),
    "escalate": (ASSISTANT, ("I'll pass {obj}{q} on to our specialist team.", "A colleague will contact you about {obj}{q}.",
                             "I've escalated {obj}{q} to a supervisor.")),
    "decline": (ASSISTANT, ("Unfortunately we can't change {obj}{q}.", "I'm afraid {obj}{q} isn't possible.",
                            "Sadly our policy does not allow {obj}{q}.")),
    "inform": (ASSISTANT, ("I checked {obj}{q}: it will be ready on {date}.", "{Obj}{q} looks fine on our side.",
                           "According to our system, {obj}{q} was updated on {date}.")),
}

# object key -> surface forms
OBJECTS: dict[str, tuple[str, ...]] = {
    "order": ("my order", "the order", "my purchase"), "delivery_date": ("the delivery date", "the arrival date"),
    "refund": ("my refund", "the refund", "the money back"), "invoice": ("the invoice", "my invoice", "a VAT invoice"),
    "password": ("my password", "the password reset"), "loyalty_card": ("my loyalty card", "the loyalty card"),
    "loyalty_points": ("my loyalty points", "the points balance"), "subscription": ("my subscription", "the monthly plan"),
    "delivery_address": ("the delivery address", "the shipping address"), "return_label": ("the return label", "a return label"),
    "damaged_item": ("the damaged item", "the broken product"), "payment": ("the payment", "my card payment"),
    "account_email": ("my account email", "the email on my account"), "promo_code": ("the promo code", "my discount code"),
    "gift_card": ("the gift card", "my gift voucher"), "exchange": ("an exchange", "swapping the item"),
    "warranty": ("the warranty", "the guarantee"), "installation": ("the installation", "the installation appointment"),
    "missing_item": ("the missing item", "the item that never arrived"), "double_charge": ("the double charge", "being charged twice"),
    "login": ("logging in", "the login page"), "app": ("the mobile app", "the app"), "newsletter": ("the newsletter", "marketing emails"),
    "pickup_point": ("the pickup point", "collection at a parcel shop"), "store_hours": ("the store opening hours", "the shop hours"),
    "size_guide": ("the size guide", "sizing"), "stock": ("stock availability", "whether the item is in stock"),
    "price_match": ("a price match", "the price difference"), "courier": ("the courier", "the delivery driver"),
    "tracking": ("the tracking number", "parcel tracking"), "account_deletion": ("deleting my account", "account removal"),
    "personal_data": ("my personal data", "the data you store about me"), "billing_address": ("the billing address", "my invoice address"),
    "payment_method": ("the payment method", "my saved card"), "installments": ("paying in installments", "the installment plan"),
    "late_fee": ("the late fee", "the overdue charge"), "membership": ("my membership", "the premium membership"),
    "trial": ("the free trial", "my trial period"), "renewal": ("the automatic renewal", "the renewal date"),
    "pause": ("pausing my plan", "a subscription pause"), "upgrade": ("an upgrade", "the higher tier"),
    "downgrade": ("a downgrade", "the cheaper tier"), "voucher": ("the voucher", "my coupon"),
    "receipt": ("the receipt", "a copy of the receipt"), "order_cancellation": ("cancelling the order", "the order cancellation"),
    "wrong_item": ("the wrong item", "the item I did not order"), "assembly": ("the assembly instructions", "assembling the product"),
    "spare_parts": ("spare parts", "a replacement part"), "recall": ("the product recall", "the safety recall"),
    "allergy_info": ("the allergy information", "the ingredients list"), "gift_wrap": ("gift wrapping", "the gift message"),
    "bulk_order": ("a bulk order", "ordering in large quantities"), "business_account": ("the business account", "a company account"),
    "two_factor": ("two-factor authentication", "the verification code"), "phone_number": ("my phone number", "the contact number"),
    "complaint": ("my complaint", "the formal complaint"), "feedback": ("the feedback form", "my review"),
    "delivery_fee": ("the delivery fee", "the shipping cost"), "express_delivery": ("express delivery", "next-day shipping"),
    "international_shipping": ("international shipping", "delivery abroad"), "customs": ("the customs charges", "import duties"),
    "preorder": ("the pre-order", "reserving the new model"), "back_order": ("the back order", "the delayed item"),
    "store_pickup": ("click and collect", "picking up in store"), "repair": ("the repair", "fixing the device"),
    "technician": ("the technician visit", "the engineer appointment"), "contract": ("the contract", "my contract terms"),
    "referral": ("the referral bonus", "inviting a friend"), "birthday_reward": ("the birthday reward", "my birthday voucher"),
}

QUALIFIERS: tuple[tuple[str, str], ...] = (
    ("", ""), ("garden", " for the garden furniture"), ("kitchen", " for the kitchen appliance"),
    ("phone", " for the smartphone"), ("clothing", " for the winter coat"), ("books", " for the book set"),
    ("toys", " for the children's toys"), ("pet", " for the pet food"), ("sports", " for the running shoes"),
    ("beauty", " for the skincare set"), ("office", " for the office chair"), ("music", " for the headphones"),
)

# Intents that open and close conversations in both roles.
COMMON: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {   # intent -> (customer texts, assistant texts)
    "greeting": (("Hello.", "Hi there!", "Good morning.", "Hey, hope you're well."),
                 ("Hello! How can I help you today?", "Hi, thanks for reaching out. What can I do for you?",
                  "Good morning! How may I assist you?")),
    "thank_you": (("Thanks a lot!", "Thank you so much for your help.", "Great, thanks.", "Many thanks!"),
                  ("Thank you for your patience.", "Thanks for waiting.", "Thank you for letting us know.")),
    "goodbye": (("Bye!", "That's all, goodbye.", "Have a nice day, bye.", "See you."),
                ("Have a great day! Goodbye.", "Take care, bye!", "Enjoy the rest of your day. Goodbye!")),
}

FIRST = ("Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Isla", "Jonas", "Keiko", "Luca")


@dataclass(frozen=True)
class SyntheticIntent:
    name: str
    role: str
    action: str | None = None
    forms: tuple[str, ...] = ()
    qualifier: str = ""


def intent_vocabulary(n_intents: int, rng: random.Random) -> list[SyntheticIntent]:
    """n_intents intents ranked from most to least frequent (the common ones first)."""
    common = [SyntheticIntent(name, "both") for name in COMMON][:n_intents]
    pool = [SyntheticIntent(f"{action}_{obj}" + (f"_{qkey}" if qkey else ""), role, action, forms, qphrase)
            for qkey, qphrase in QUALIFIERS for action, (role, _) in ACTIONS.items() for obj, forms in OBJECTS.items()]
    needed = n_intents - len(common)
    if needed > len(pool):
        raise ValueError(f"at most {len(pool) + len(COMMON)} synthetic intents are available, asked for {n_intents}")
    # unqualified intents first (more natural), then qualified ones; each group in a seeded order
    plain = [i for i in pool if not i.qualifier]
    qualified = [i for i in pool if i.qualifier]
    rng.shuffle(plain)
    rng.shuffle(qualified)
    chosen = (plain + qualified)[:needed]
    rng.shuffle(chosen)  # the frequency ranking
    return common + chosen


def _fill(template: str, rng: random.Random) -> dict[str, str]:
    """Random values for the slots this template uses (drawing only those keeps generation fast)."""
    slots = {}
    if "{detail}" in template:
        slots["detail"] = rng.choice((f"order {rng.randint(10000, 99999)}", f"{rng.choice(FIRST).lower()}@example.com",
                                      f"{rng.randint(1, 28)} {rng.choice(('March', 'June', 'October'))}",
                                      f"{rng.randint(5, 300)} euros"))
    if "{days}" in template:
        slots["days"] = str(rng.randint(2, 10))
    if "{date}" in template:
        slots["date"] = f"{rng.choice(('Monday', 'Tuesday', 'Thursday', 'Friday'))} the {rng.randint(1, 28)}th"
    return slots


def _text(intent: SyntheticIntent, role: str, rng: random.Random) -> str:
    if intent.action is None:
        customer, assistant = COMMON[intent.name]
        return rng.choice(customer if role == CUSTOMER else assistant)
    template = rng.choice(ACTIONS[intent.action][1])
    obj = rng.choice(intent.forms)
    text = template.format(obj=obj, Obj=obj[:1].upper() + obj[1:], q=intent.qualifier, **_fill(template, rng))
    if rng.random() < 0.25:  # an extra slot sentence, so messages of one intent are not near-duplicates
        text += rng.choice((f" My order number is {rng.randint(10000, 99999)}.", f" This is {rng.choice(FIRST)}.",
                            f" It was on {rng.randint(1, 28)} May.", " Thanks in advance."))
    return text


def _lengths(n_messages: int, rng: random.Random, low: int, high: int) -> list[int]:
    """Conversation lengths in [low, high] summing exactly to n_messages."""
    lengths: list[int] = []
    total = 0
    while total < n_messages:
        remaining = n_messages - total
        length = min(rng.randint(low, high), remaining)
        if length < low:  # a short tail: spread it over earlier conversations that have room
            for k in range(len(lengths) - 1, -1, -1):
                while length and lengths[k] < high:
                    lengths[k] += 1
                    length -= 1
            if length:  # everything is full: split the last conversation + the tail into two halves
                combined = lengths.pop() + length
                lengths += [combined - combined // 2, combined // 2]
            break
        lengths.append(length)
        total += length
    return lengths


def synthetic_dataset(n_messages: int, n_intents: int, seed: int = 0, *, zipf_exponent: float = 1.0,
                      min_len: int = 6, max_len: int = 12, switch_prob: float = 0.85) -> Dataset:
    """A seeded dataset of exactly `n_messages` messages with gold intents drawn from `n_intents`.

    zipf_exponent: frequency of the intent of rank r is proportional to 1 / r**zipf_exponent.
    switch_prob: probability that the next message comes from the other role.
    """
    if n_messages < min_len:
        raise ValueError(f"n_messages must be at least {min_len}, got {n_messages}")
    if n_intents < 4:
        raise ValueError(f"n_intents must be at least 4 (greeting, thank_you, goodbye + one more), got {n_intents}")
    rng = random.Random(seed)
    vocabulary = intent_vocabulary(n_intents, rng)
    weights = [1.0 / (rank + 1) ** zipf_exponent for rank in range(len(vocabulary))]
    by_role = {}
    for role in (CUSTOMER, ASSISTANT):  # mid-conversation messages: the domain intents of that role
        members = [(i, w) for i, w in zip(vocabulary, weights) if i.role == role]
        by_role[role] = ([i for i, _ in members], list(accumulate(w for _, w in members)))
    common = {i.name: i for i in vocabulary if i.action is None}
    conversations = []
    for number, length in enumerate(_lengths(n_messages, rng, min_len, max_len)):
        role = CUSTOMER
        messages = []
        for position in range(length):
            if position == 0 and rng.random() < 0.5:
                intent = common["greeting"]
            elif position == length - 1 and rng.random() < 0.6:
                intent = common["goodbye" if rng.random() < 0.6 else "thank_you"]
            else:
                members, cumulative = by_role[role]
                intent = rng.choices(members, cum_weights=cumulative)[0]
            messages.append(Message(number, position, role, _text(intent, role, rng), intent.name))
            if rng.random() < switch_prob:
                role = ASSISTANT if role == CUSTOMER else CUSTOMER
        if len({m.role for m in messages}) == 1:  # both roles in every conversation
            last = messages[-1]
            other = ASSISTANT if last.role == CUSTOMER else CUSTOMER
            intent = common["goodbye"]
            messages[-1] = Message(number, last.index, other, _text(intent, other, rng), intent.name)
        conversations.append(Conversation(number, tuple(messages)))
    return Dataset(conversations, f"<synthetic n_messages={n_messages} n_intents={n_intents} seed={seed}>")
