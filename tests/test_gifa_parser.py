"""GIFA's answer parser: the variants it accepts, what it rejects, and that it only ever raises ParseError."""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igft.errors import IgftError
from igft.gifa.parser import ParseError, extract_name, normalize_name, parse_intents

SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


@pytest.mark.parametrize("line", [
    "1. greet_customer", "1) greet_customer", "(1) greet_customer", "1: greet_customer", "#1 greet_customer",
    "#1: greet_customer", "[1] greet_customer", "1 - greet_customer", "- 1. greet_customer", "**1.** greet_customer",
    "Message 1: greet_customer", "1.greet_customer", "  1.   greet_customer  ",
])
def test_numbering_variants(line):
    assert parse_intents(line, 1) == ["greet_customer"]


@pytest.mark.parametrize("item, expected", [
    ("`greet_customer`", "greet_customer"), ('"greet_customer"', "greet_customer"), ("'greet_customer'", "greet_customer"),
    ("[greet_customer]", "greet_customer"), ("**greet_customer**", "greet_customer"), ("<greet_customer>", "greet_customer"),
    ("intent: greet_customer", "greet_customer"), ("Intent - greet_customer", "greet_customer"),
    ("greet_customer.", "greet_customer"), ("GreetCustomer", "greet_customer"), ("greetCustomer", "greet_customer"),
    ("Greet Customer", "greet_customer"), ("report-late delivery", "report_late_delivery"),
    ("customer: hi -> greet_customer", "greet_customer"), ("greet_customer - the customer says hello", "greet_customer"),
    ("greet_customer (opening)", "greet_customer"), ("greet_customer: says hello", "greet_customer"),
    ("`ProvideOrderNumber`", "provide_order_number"), ("HTTPError", "http_error"),
])
def test_name_decorations_and_normalisation(item, expected):
    assert parse_intents(f"1. {item}", 1) == [expected]


def test_prose_lines_and_preamble_are_ignored():
    text = ("Sure! Here are the intents for each message:\n\n1. greet_customer\n2) ask_order_number\n"
            "Note: message 3 is a confirmation.\n3. confirm_order\n\nLet me know if you need anything else.")
    assert parse_intents(text, 3) == ["greet_customer", "ask_order_number", "confirm_order"]


def test_bullets_and_bare_names_when_there_is_no_numbering():
    assert parse_intents("- greet_customer\n* ask_order_number\n• thank_customer", 3) == \
        ["greet_customer", "ask_order_number", "thank_customer"]
    assert parse_intents("Intents:\ngreet_customer\nAskOrderNumber\nHere you go, all done.", 2) == \
        ["greet_customer", "ask_order_number"]


def test_numbers_out_of_order_zero_based_and_repeated():
    assert parse_intents("2. b_two\n1. a_one\n3. c_three", 3) == ["a_one", "b_two", "c_three"]
    assert parse_intents("0. a_one\n1. b_two", 2) == ["a_one", "b_two"]
    # A model that repeats its list: the first line per number counts.
    assert parse_intents("1. a_one\n2. b_two\n1. other\n2. other", 2) == ["a_one", "b_two"]


@pytest.mark.parametrize("text, n, kind", [
    ("", 1, "empty"), ("   \n  ", 2, "empty"),
    ("1. a_one\n2. b_two", 3, "count_mismatch"), ("1. a_one\n2. b_two\n3. c", 2, "count_mismatch"),
    ("Just some prose, no list here.", 1, "count_mismatch"),
    ("1. a_one\n3. c_three", 2, "numbering"), ("5. a\n6. b", 2, "numbering"),
    # copies of the conversation and role words are not intents
    ("1. customer: Hi, I was charged twice.\n2. assistant: Sorry about that!", 2, "invalid_name"),
    ("1. customer\n2. assistant", 2, "invalid_name"),
    ("1. intent_name", 1, "invalid_name"),
    ("1. the customer asks whether the parcel will arrive on time tomorrow morning", 1, "invalid_name"),
    ("1. 42", 1, "invalid_name"), ("1. café_order", 1, "invalid_name"), ("1. a.b.c", 1, "invalid_name"),
])
def test_rejections_raise_parse_error_with_kind(text, n, kind):
    with pytest.raises(ParseError) as info:
        parse_intents(text, n)
    assert info.value.kind == kind
    assert isinstance(info.value, IgftError)


def test_bad_expected_count_is_a_programming_error():
    with pytest.raises(ValueError):
        parse_intents("1. a", 0)


def test_normalize_name_contract():
    assert normalize_name("order_status") == "order_status"
    assert normalize_name("Order Status") == "order_status"
    assert normalize_name("order status, please") is None
    assert normalize_name("a b c d e f g h i") is None  # more than 8 words is a sentence
    assert normalize_name("x" * 65) is None
    assert extract_name("customer: thanks") is None  # the role word is rejected, the text is not taken


# --- fuzzing: nothing but ParseError, and any success is n valid names -------------------------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=400), n=st.integers(min_value=1, max_value=30))
def test_fuzz_arbitrary_text_only_raises_parse_error(text, n):
    try:
        names = parse_intents(text, n)
    except ParseError:
        return
    assert len(names) == n and all(SNAKE.match(name) and len(name) <= 64 for name in names)


_alphabet = st.sampled_from(list("0123456789.)(:#-*•[]`'\"_ \n\tabcXYZ") + ["intent:", "customer:", "->", "**", "1.", "\n2)"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_alphabet, max_size=80), n=st.integers(min_value=1, max_value=6))
def test_fuzz_list_like_text_only_raises_parse_error(pieces, n):
    try:
        names = parse_intents("".join(pieces), n)
    except ParseError:
        return
    assert len(names) == n and all(SNAKE.match(name) for name in names)


_words = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
_names = st.lists(_words, min_size=1, max_size=4).map("_".join).filter(
    lambda s: s not in {"customer", "assistant", "user", "agent", "system", "intent", "intents", "message", "label", "name"})
_styles = st.sampled_from(["{i}. {n}", "{i}) {n}", "({i}) {n}", "{i}: {n}", "#{i} {n}", "- {i}. `{n}`",
                           "{i}. intent: {n}", '{i}. "{n}"', "{i}. **{n}**", "[{i}] {n}"])


@settings(max_examples=200, deadline=None)
@given(names=st.lists(_names, min_size=1, max_size=12), style=_styles, preamble=st.booleans())
def test_fuzz_decorated_valid_answers_round_trip(names, style, preamble):
    lines = [style.format(i=i, n=name) for i, name in enumerate(names, start=1)]
    text = ("Here are the intents:\n" if preamble else "") + "\n".join(lines)
    assert parse_intents(text, len(names)) == names
