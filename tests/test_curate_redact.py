"""PII redaction: checksums, typed placeholders consistent within a conversation, counts-only report, errors."""
import json

import pytest

from igft.cli import main
from igft.curate import CurateError, parse_entity_types
from igft.curate.checksums import find_cards, find_ibans, iban_valid, luhn_valid
from igft.curate.detect import DetectorConfig, PiiDetector
from igft.curate.redact import Redactor, redact_dataset
from igft.data import Conversation, Dataset, Message, load_conversations

EMAIL_A, EMAIL_B = "jane.roe@example.com", "j.doe@mail.example.org"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
PHONE = "+44 20 7946 0958"


@pytest.fixture(scope="module")
def redactor():
    return Redactor(DetectorConfig())


def conversation(number, texts):
    roles = ["customer", "assistant"]
    return Conversation(number, tuple(Message(number, i, roles[i % 2], t) for i, t in enumerate(texts)))


def test_checksums_accept_valid_numbers_and_reject_one_digit_off():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005") and not luhn_valid("378282246310006")
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # German IBANs have 22 characters


def test_card_finder_keeps_groups_and_ignores_non_luhn_digit_runs():
    text = f"card {CARD} 12/27, order 58213, ticket 1234 5678 9012 3456, amex 3782-822463-10005"
    spans = [text[a:b] for a, b in find_cards(text)]
    assert spans == [CARD, "3782-822463-10005"]
    text = f"iban {IBAN} thanks, or gb82west12345698765432!"
    assert [text[a:b] for a, b in find_ibans(text)] == [IBAN, "gb82west12345698765432"]


def test_detector_finds_each_type_without_a_model(redactor):
    text = (f"mail {EMAIL_A}, call {PHONE} or (415) 555-2671, card {CARD}, IBAN {IBAN}, "
            "see https://shop.example.com/order/5 from 192.168.1.20; order 58213 cost $45.99 on 12/05/2024")
    found = {(s.entity_type, text[s.start:s.end]) for s in redactor.detector.find(text)}
    assert found == {("EMAIL", EMAIL_A), ("PHONE", PHONE), ("PHONE", "(415) 555-2671"), ("CARD", CARD),
                     ("IBAN", IBAN), ("URL", "https://shop.example.com/order/5"), ("IP", "192.168.1.20")}


def test_placeholders_are_consistent_within_a_conversation_and_restart_in_the_next(redactor):
    data = Dataset([
        conversation(0, [f"Send it to {EMAIL_A} please", f"I have {EMAIL_A.upper()} and {EMAIL_B}, which one?",
                         f"{EMAIL_B}, and my card is {CARD}", f"Card {CARD.replace(' ', '-')} noted, sent to {EMAIL_B}"]),
        conversation(1, [f"My address is {EMAIL_B}", "Thanks"]),
    ])
    redacted, report = redactor.redact_dataset(data)
    texts = [m.text for m in redacted.messages]
    assert texts[:4] == ["Send it to {{EMAIL_1}} please", "I have {{EMAIL_1}} and {{EMAIL_2}}, which one?",
                         "{{EMAIL_2}}, and my card is {{CARD_1}}", "Card {{CARD_1}} noted, sent to {{EMAIL_2}}"]
    assert texts[4:] == ["My address is {{EMAIL_1}}", "Thanks"]  # numbering restarts: no link across customers
    assert report.detections["EMAIL"] == 6 and report.detections["CARD"] == 2
    assert report.distinct_values == {"EMAIL": 3, "PHONE": 0, "CARD": 1, "IBAN": 0, "URL": 0, "IP": 0}
    assert (report.messages_changed, report.conversations_changed) == (5, 2)
    assert [m.key for m in redacted.messages] == [m.key for m in data.messages]


def test_report_holds_counts_never_values(tmp_path):
    data = Dataset([conversation(0, [f"{EMAIL_A} {PHONE} {CARD} {IBAN}", "ok"])])
    csv = data.save(tmp_path / "in.csv")
    assert main(["curate", "redact", "--data", str(csv), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    report_text = (tmp_path / "out" / "redaction_report.json").read_text()
    for value in (EMAIL_A, PHONE, CARD, IBAN, "4111", "7946"):
        assert value not in report_text
    report = json.loads(report_text)
    assert report["detections"]["IBAN"] == 1 and report["not_covered"].keys() == {"PERSON"}
    redacted = load_conversations(tmp_path / "out" / "redacted.csv")
    assert redacted.messages[0].text == "{{EMAIL_1}} {{PHONE_1}} {{CARD_1}} {{IBAN_1}}"


def test_entity_selection_and_bad_entity_lines(tmp_path, capsys):
    assert parse_entity_types("email, Phone_Number,credit_card") == ("EMAIL", "PHONE", "CARD")
    with pytest.raises(CurateError, match="unknown entity type 'emial'; valid types: EMAIL"):
        parse_entity_types("emial")
    redacted, report = redact_dataset(Dataset([conversation(0, [f"{EMAIL_A} {CARD}"])]), "card")
    assert redacted.messages[0].text == f"{EMAIL_A} {{{{CARD_1}}}}" and report.entity_types == ["CARD"]
    assert main(["curate", "redact", "--entities", "emial", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown entity type 'emial'" in err
    assert not (tmp_path / "x").exists()


def test_person_without_a_ner_model_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(CurateError, match="no detector for PERSON here"):
        PiiDetector(DetectorConfig(entity_types=("PERSON",), ner_model=None if not _has_sm() else str(tmp_path / "none")))
    if not _has_sm():
        assert main(["curate", "redact", "--entities", "email,person", "--out", str(tmp_path / "x")]) == 2
        assert "no detector for PERSON" in capsys.readouterr().err


def _has_sm():
    import spacy

    return spacy.util.is_package("en_core_web_sm")


def test_person_names_through_a_spacy_pipeline_given_as_ner_model(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Maria Lopez"},
                                              {"label": "PERSON", "pattern": [{"LOWER": "jan"}, {"LOWER": "novak"}]}])
    nlp.to_disk(tmp_path / "ner")
    data = Dataset([conversation(0, ["Hi, this is Maria Lopez", "Hello Maria Lopez, is jan novak with you?"])])
    redacted, report = redact_dataset(data, "person,email", ner_model=str(tmp_path / "ner"))
    assert [m.text for m in redacted.messages] == ["Hi, this is {{PERSON_1}}", "Hello {{PERSON_1}}, is {{PERSON_2}} with you?"]
    assert report.not_covered == {}


def test_detector_never_opens_a_connection(monkeypatch):
    import requests
    import tldextract.tldextract as tld

    def refuse(*args, **kwargs):
        raise AssertionError("redaction tried to reach the network")

    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(tld, "TLD_EXTRACTOR", tld.TLDExtract(cache_dir=None))  # as on a fresh machine
    monkeypatch.delenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", raising=False)
    detector = PiiDetector(DetectorConfig(entity_types=("EMAIL", "URL")))
    text = f"write to {EMAIL_A} or see https://www.example.co.uk/a"
    assert {s.entity_type for s in detector.find(text)} == {"EMAIL", "URL"}


def test_cli_help_and_bad_phone_region(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["curate", "--help"])
    assert "redact" in capsys.readouterr().out
    assert main(["curate", "redact", "--phone-regions", "US,XX", "--out", str(tmp_path / "x")]) == 2
    assert "unknown phone region(s) ['XX']" in capsys.readouterr().err


def test_redacting_again_numbers_new_values_after_existing_placeholders(redactor):
    once, _ = redact_dataset(Dataset([conversation(0, [f"{EMAIL_A} please", "noted"])]), "email")
    again_input = Dataset([Conversation(0, once.conversations[0].messages
                                        + (Message(0, 2, "customer", f"or {EMAIL_B}"),))])
    twice, report = redactor.redact_dataset(again_input)
    assert [m.text for m in twice.messages] == ["{{EMAIL_1}} please", "noted", "or {{EMAIL_2}}"]
    assert report.distinct_values["EMAIL"] == 1
