"""The messages GIFA sends: instruction, output protocol, known intents to reuse, numbered conversation.

Only `instruction` is what the prompt-search backbones tune; the protocol, the known-intent section and
the conversation block are fixed here so that every instruction is parsed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from igft.data import Conversation

METHODS = ("name", "example", "general")

# Generation stops here: an answer that follows the protocol never contains a role prefix, while a model
# that copies the conversation instead of labeling it is cut after a few tokens (it fails either way).
ROLE_STOP = ("customer:", "assistant:")

SEED_INSTRUCTION = (
    "Read the customer-support conversation below and name the purpose of every message: what the "
    "customer wants, reports or answers, or what the assistant does in reply (asks, informs, confirms, "
    "apologises, greets, closes). Give each message exactly one intent.\n"
    "Keep intents general enough to recur in other conversations: leave order numbers, product names "
    "and dates out of the name. If one of the known intents listed below fits a message, use that "
    "intent exactly as written; invent a new intent only when none of them fits."
)

# The one output format the parser is built for; the last message repeats the exact line count wanted.
OUTPUT_PROTOCOL = (
    "Answer with one line per message, in the order of the messages, and nothing else. Each line is the "
    "message number, a dot, a space and the intent in snake_case (lowercase words joined by underscores), "
    "for example `2. ask_preferred_time`."
)

# A worked example, sent as a previous user/assistant exchange, from a domain the bundled toy data does
# not cover (restaurant bookings) so it shows the format without suggesting any toy intent. Small open
# models follow the format far more often with it; turn it off with GifaConfig(worked_example=False).
EXAMPLE_CONVERSATION = (
    "1. customer: Hi, can I book a table for four tonight?\n"
    "2. assistant: Of course. What time would you like?\n"
    "3. customer: Around 8 pm, please.\n"
    "4. assistant: Done, your table for four is booked at 8 pm."
)
EXAMPLE_ANSWER = "1. request_table_booking\n2. ask_preferred_time\n3. provide_preferred_time\n4. confirm_booking"

NO_KNOWN_INTENTS = "Known intents: none yet; create the intents you need."


@dataclass(frozen=True)
class KnownIntent:
    """One entry of the known-intent section: name plus what the method shows with it."""

    name: str
    description: str = ""
    examples: tuple[str, ...] = ()


def format_conversation(conversation: Conversation) -> str:
    """`1. customer: ...` lines, numbered from 1 in message order."""
    return "\n".join(f"{i}. {m.role}: {m.text}" for i, m in enumerate(conversation.messages, start=1))


def known_intents_section(method: str, intents: Sequence[KnownIntent]) -> str:
    """The block that lists intents to reuse; its detail depends on the GIFA method.

    name: one name per line; example: name plus example messages; general: name plus description.
    """
    if method not in METHODS:
        raise ValueError(f"unknown GIFA method {method!r}; use one of {list(METHODS)}")
    if not intents:
        return NO_KNOWN_INTENTS
    lines = ["Known intents (reuse one when it fits the message):"]
    for intent in intents:
        if method == "example" and intent.examples:
            shown = "; ".join(f'"{_one_line(text)}"' for text in intent.examples)
            lines.append(f"- {intent.name} (e.g. {shown})")
        elif method == "general" and intent.description:
            lines.append(f"- {intent.name}: {_one_line(intent.description)}")
        else:
            lines.append(f"- {intent.name}")
    return "\n".join(lines)


def conversation_message(conversation: Conversation, known_section: str) -> str:
    """The final user message: known intents, the numbered conversation, the exact line count."""
    n = len(conversation.messages)
    return "\n\n".join([
        known_section,
        f"Conversation ({n} messages):\n{format_conversation(conversation)}",
        f"Label all {n} messages: answer with exactly {n} lines.",
    ])


def build_labeling_messages(instruction: str, conversation: Conversation, method: str,
                            known: Sequence[KnownIntent], *, worked_example: bool = True) -> tuple[dict, ...]:
    """The chat messages for one conversation: system (instruction + protocol), optional worked
    example as a user/assistant exchange, then the conversation to label."""
    messages = [{"role": "system", "content": f"{instruction.strip()}\n\n{OUTPUT_PROTOCOL}"}]
    if worked_example:
        messages += [
            {"role": "user", "content": f"{NO_KNOWN_INTENTS}\n\nConversation (4 messages):\n{EXAMPLE_CONVERSATION}\n\n"
                                        "Label all 4 messages: answer with exactly 4 lines."},
            {"role": "assistant", "content": EXAMPLE_ANSWER},
        ]
    messages.append({"role": "user", "content": conversation_message(conversation, known_intents_section(method, known))})
    return tuple(messages)


def build_description_prompt(new_intents: Mapping[str, Sequence[str]]) -> str:
    """Ask for one short description per new intent (method `general`); values are example messages."""
    lines = [
        "Write a one-line description of each intent below: what a message with this intent does, in "
        "at most 15 words, general enough to cover other conversations.",
        "Answer with one line per intent, `intent_name: description`, in the order given, and nothing else.",
        "",
    ]
    for name, examples in new_intents.items():
        shown = "; ".join(f'"{_one_line(text)}"' for text in list(examples)[:2])
        lines.append(f"- {name} (e.g. {shown})" if shown else f"- {name}")
    return "\n".join(lines)


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
