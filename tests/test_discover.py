"""Embedding and hybrid labelers (igft.discover) on small data with known clusters; fast, no real models."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from igft.data import Conversation, Dataset, Message
from igft.discover import DiscoveryConfigError, label_with, make_config
from igft.discover.hybrid import parse_naming_reply, parse_yes_no
from igft.discover.naming import ctfidf_keywords, is_snake_case, to_snake_case, unique_names
from igft.labeling import LabelingResult
from igft.llm.base import HashingEmbedder, ScriptedLM

# Each intent has its own vocabulary: a message is 5 words drawn from it plus one shared filler word,
# so a bag-of-words embedder separates the intents clearly (cosine ~0.5 inside, ~0.05 across).
VOCAB = {
    "customer": {
        "track_order": "order package tracking shipped delivery courier parcel arrive",
        "refund_request": "refund money back return charge reimburse credit cancel",
        "login_problem": "password login account locked reset signin username access",
    },
    "assistant": {
        "ask_order_number": "number reference provide share confirm digits order receipt",
        "explain_policy": "policy days within eligible terms conditions rules allowed",
        "offer_reset_link": "link email sent inbox reset click verify spam",
    },
}
FILLERS = "the a my please now today".split()


def make_dataset(n_conversations: int = 20, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    conversations = []
    for number in range(n_conversations):
        messages = []
        for index in range(4):
            role = "customer" if index % 2 == 0 else "assistant"
            intent = rng.choice(sorted(VOCAB[role]))
            words = rng.sample(VOCAB[role][intent].split(), 5) + [rng.choice(FILLERS)]
            messages.append(Message(number, index, role, " ".join(words), intent))
        conversations.append(Conversation(number, tuple(messages)))
    return Dataset(conversations, "test-data")


def gold_and_pred(dataset: Dataset, result: LabelingResult) -> tuple[list[str], list[str]]:
    return [m.intent for m in dataset.messages], [result.labels[m.key] for m in dataset.messages]


def ami(dataset: Dataset, result: LabelingResult) -> float:
    gold, pred = gold_and_pred(dataset, result)
    return adjusted_mutual_info_score(gold, pred)


@pytest.fixture
def dataset() -> Dataset:
    return make_dataset()


# --- naming ---------------------------------------------------------------------------------

def test_to_snake_case_and_validation():
    assert to_snake_case("Report Problem!") == "report_problem"
    assert to_snake_case("askClarification") == "ask_clarification"
    assert to_snake_case("123 go") == "go"
    assert is_snake_case("report_problem") and is_snake_case("a1_b2")
    for bad in ["Report", "report__problem", "_x", "x_", "1abc", "with space", ""]:
        assert not is_snake_case(bad)


def test_ctfidf_keywords_prefer_cluster_specific_words():
    texts = [["my card is not recognized", "card not recognized at checkout"],
             ["I want a refund for my card", "refund please"]]
    keywords = ctfidf_keywords(texts, top_n=3)
    # "card" is in both clusters, so words only in one cluster rank above it
    assert set(keywords[0][:2]) == {"not", "recognized"} and keywords[0].index("card") >= 2
    assert keywords[1][0] == "refund"
    assert not {"my", "for", "i"} & set(keywords[1])  # function words never name an intent


def test_unique_names_resolve_collisions_with_more_keywords_then_counters():
    names = unique_names([["card", "lost"], ["card", "lost", "stolen"], ["card", "lost"], [], []], n_words=2)
    assert names[0] == "card_lost" and names[1] == "card_lost_stolen"
    assert len(set(names)) == len(names)
    assert all(is_snake_case(n) for n in names)


def test_labeler_names_are_unique_valid_snake_case(dataset):
    for options in ({}, {"method": "kmeans", "n_clusters": 9}, {"method": "hdbscan"}):
        result = label_with("embeddings", dataset, embedder=HashingEmbedder(), **options)
        names = list(result.catalog["intent"])
        assert len(names) == len(set(names)) == result.stats["n_intents"]
        assert all(is_snake_case(n) for n in names), names
        assert set(result.labels.values()) == set(names)


# --- clustering quality, determinism, outputs ----------------------------------------------------

def test_automatic_k_recovers_known_clusters(dataset):
    result = label_with("embeddings", dataset, embedder=HashingEmbedder(), seed=0)
    assert ami(dataset, result) > 0.9
    assert result.stats["n_intents"] == 6  # no k given: the threshold search found it
    assert result.stats["calls"] == 0 and result.stats["seconds"] >= 0
    assert len(result.labels) == dataset.n_messages


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_oracle_k_recovers_known_clusters(dataset, method):
    result = label_with("embeddings", dataset, embedder=HashingEmbedder(), method=method, n_clusters=6)
    assert result.stats["n_intents"] == 6
    assert ami(dataset, result) > 0.9


def test_split_roles_keeps_customer_and_assistant_apart(dataset):
    result = label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans", n_clusters=4)
    roles_by_label: dict[str, set] = {}
    for m in dataset.messages:
        roles_by_label.setdefault(result.labels[m.key], set()).add(m.role)
    assert all(len(r) == 1 for r in roles_by_label.values())


def test_same_seed_same_labels(dataset):
    for options in ({}, {"method": "kmeans", "n_clusters": 5}, {"context": "role+previous"}, {"method": "hdbscan"}):
        first = label_with("embeddings", dataset, embedder=HashingEmbedder(), seed=3, **options)
        second = label_with("embeddings", dataset, embedder=HashingEmbedder(), seed=3, **options)
        assert first.labels == second.labels
        assert first.catalog.equals(second.catalog)


def test_representatives_are_members_closest_to_centroid(dataset):
    result = label_with("embeddings", dataset, embedder=HashingEmbedder(), n_representatives=2)
    texts_by_label: dict[str, set] = {}
    for m in dataset.messages:
        texts_by_label.setdefault(result.labels[m.key], set()).add(m.text)
    for row in result.catalog.itertuples():
        assert 1 <= len(row.examples) <= 2
        assert set(row.examples) <= texts_by_label[row.intent]
        assert row.count == sum(1 for v in result.labels.values() if v == row.intent)


def test_outputs_match_gifa_layout(dataset, tmp_path):
    from igft.labeling import write_outputs

    result = label_with("embeddings", dataset, embedder=HashingEmbedder())
    paths = write_outputs(result, dataset, tmp_path)
    assert {"labels", "catalog", "stats", "report"} <= set(paths)
    report = json.loads(paths["report"].read_text())
    assert report["AMI"] > 0.9
    stats = json.loads(paths["stats"].read_text())
    assert {"calls", "seconds", "n_intents"} <= set(stats)


def test_bad_options_fail_with_one_clear_line(dataset):
    with pytest.raises(DiscoveryConfigError, match="unknown option 'nclusters'"):
        label_with("embeddings", dataset, embedder=HashingEmbedder(), nclusters=5)
    with pytest.raises(DiscoveryConfigError, match="kmeans needs n_clusters"):
        label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans")
    with pytest.raises(DiscoveryConfigError, match="unknown labeler"):
        label_with("bertopic", dataset, embedder=HashingEmbedder())
    with pytest.raises(DiscoveryConfigError, match="needs an LLM"):
        label_with("hybrid", dataset, embedder=HashingEmbedder())


def test_cli_style_string_options_are_coerced():
    config = make_config("hybrid", method="kmeans", n_clusters="7", split_roles="false", n_shown="3", threshold="auto")
    assert config.embedding.n_clusters == 7 and config.embedding.split_roles is False
    assert config.n_shown == 3 and config.embedding.threshold is None


# --- hybrid ---------------------------------------------------------------------------------

def _gold_of_shown(request, dataset: Dataset) -> list[str]:
    """The gold intents of the numbered messages in a naming prompt (the 'oracle' a good LLM approximates)."""
    by_text = {m.text: m.intent for m in dataset.messages}
    prompt = request.messages[-1]["content"]
    lines = [line.split(". ", 1)[1] for line in prompt.splitlines() if line[:1].isdigit() and ". " in line]
    return [by_text[t] for t in lines]


def test_hybrid_calls_scale_with_clusters_not_messages():
    small, large = make_dataset(20, seed=1), make_dataset(80, seed=1)
    counts = []
    for data in (small, large):
        lm = ScriptedLM(lambda r: '{"intent": "some_intent"}')
        result = label_with("hybrid", data, embedder=HashingEmbedder(), lm=lm, allow_merge=False)
        assert result.stats["calls"] == len(lm.requests) == result.stats["n_proposed_clusters"]
        counts.append(len(lm.requests))
    assert large.n_messages == 4 * small.n_messages
    assert counts[0] == counts[1] == 6


def _majority_gold_namer(dataset: Dataset, rename: dict | None = None):
    def namer(request):
        gold = _gold_of_shown(request, dataset)
        name = max(sorted(set(gold)), key=gold.count)
        name = (rename or {}).get(name, name)
        return json.dumps({"intent": name, "description": f"the {name} intent"})
    return namer


def test_hybrid_merges_similar_clusters_named_alike(dataset):
    # kmeans with k=12 over-splits the 6 intents; the LLM gives the fragments of one intent one name.
    over = label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans", n_clusters=12)
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(_majority_gold_namer(dataset)),
                        method="kmeans", n_clusters=12, allow_merge=False)
    assert over.stats["n_intents"] == 12
    assert set(result.labels.values()) == set(m.intent for m in dataset.messages)
    assert ami(dataset, result) > 0.95
    row = result.catalog[result.catalog.intent == "track_order"].iloc[0]
    assert row.description == "the track_order intent"


def test_hybrid_does_not_merge_far_apart_namesakes(dataset):
    # A model that gives two unrelated intents the same name must not collapse them.
    namer = _majority_gold_namer(dataset, {"explain_policy": "help_customer", "offer_reset_link": "help_customer"})
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(namer), allow_merge=False)
    assert {"help_customer", "help_customer_2"} <= set(result.labels.values())
    assert result.stats["renamed_namesakes"] == 1
    assert ami(dataset, result) > 0.95


def test_hybrid_splits_a_mixed_cluster(dataset):
    # kmeans with k=4 must mix two intents of one role; the scripted LLM splits by gold intent.
    def splitter(request):
        gold = _gold_of_shown(request, dataset)
        kinds = sorted(set(gold))
        if len(kinds) == 1:
            return json.dumps({"intent": kinds[0]})
        return json.dumps({"split": [{"intent": k, "messages": [i + 1 for i, g in enumerate(gold) if g == k]}
                                     for k in kinds]})

    before = label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans", n_clusters=4)
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(splitter), method="kmeans",
                        n_clusters=4, n_shown=40, allow_merge=False)
    assert result.stats["splits"] >= 1
    assert result.stats["n_intents"] > before.stats["n_intents"]
    assert ami(dataset, result) > ami(dataset, before)
    assert ami(dataset, result) > 0.95


def test_hybrid_merge_checks_ask_about_near_clusters_and_follow_yes(dataset):
    # Over-split with kmeans (k=12); names are fallbacks, then every merge question is answered yes
    # when both groups' shown messages share the gold intent.
    by_text = {m.text: m.intent for m in dataset.messages}

    def judge(request):
        prompt = request.messages[-1]["content"]
        if prompt.startswith("You label intents"):
            return "not json at all"
        a, b = prompt.split("Group B", 1)
        ga = {by_text[l.split(". ", 1)[1]] for l in a.splitlines() if l[:1].isdigit()}
        gb = {by_text[l.split(". ", 1)[1]] for l in b.splitlines() if l[:1].isdigit()}
        return "Yes." if ga == gb else "No, they differ."

    over = label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans", n_clusters=12)
    lm = ScriptedLM(judge)
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=lm, method="kmeans", n_clusters=12,
                        merge_similarity=0.0)
    assert result.stats["merges"] >= 1
    assert result.stats["n_intents"] < over.stats["n_intents"]
    assert ami(dataset, result) >= ami(dataset, over)
    # naming calls + at most one merge call per proposed cluster
    assert result.stats["calls"] <= 2 * result.stats["n_proposed_clusters"]


@pytest.mark.parametrize("garbage", ["", "I think these are about stuff", '{"intent": "customer"}', '{"intent": 42}',
                                     '{"split": [{"intent": "a_b", "messages": [99]}]}', "{not json}",
                                     '{"intent": "' + "x_" * 40 + 'y"}'])
def test_hybrid_garbage_output_falls_back_to_tfidf_names(dataset, garbage):
    plain = label_with("embeddings", dataset, embedder=HashingEmbedder())
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(lambda r: garbage))
    assert result.labels == plain.labels
    assert result.stats["fallback_names"] == result.stats["n_proposed_clusters"]
    assert result.stats["merges"] == 0


def test_hybrid_survives_llm_exceptions(dataset):
    def broken(request):
        raise ConnectionError("server went away")

    plain = label_with("embeddings", dataset, embedder=HashingEmbedder())
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(broken))
    assert result.labels == plain.labels
    assert result.stats["llm_errors"] >= result.stats["n_proposed_clusters"]


def test_hybrid_is_deterministic(dataset):
    runs = [label_with("hybrid", dataset, embedder=HashingEmbedder(), lm=ScriptedLM(lambda r: '{"intent": "x_y"}'),
                       seed=5) for _ in range(2)]
    assert runs[0].labels == runs[1].labels


def test_reply_parsers():
    assert parse_naming_reply('Sure! {"intent": "Report Problem"}', 3) == ("name", ("report_problem", None))
    assert parse_naming_reply('intent: cancel_order', 3) == ("name", ("cancel_order", None))
    split = parse_naming_reply('{"split": [{"intent": "a_x", "messages": [1, 3]}, {"intent": "b_y", "messages": [2]}]}', 3)
    assert split == ("split", [("a_x", [0, 2]), ("b_y", [1])])
    assert parse_naming_reply('{"split": [{"intent": "a_x", "messages": [1]}, {"intent": "a_x", "messages": [2]}]}', 3) \
        == ("name", ("a_x", None))
    assert parse_naming_reply("customer: hello", 3) is None
    assert parse_yes_no("Yes, same.") is True and parse_yes_no("no") is False and parse_yes_no("maybe") is None


# --- threshold choice without gold labels --------------------------------------------------------

def test_auto_criterion_uses_silhouette_on_separated_groups_and_neighbors_otherwise(dataset):
    separated = label_with("embeddings", dataset, embedder=HashingEmbedder())
    assert separated.stats["threshold_search"]["criterion"] == "silhouette"
    assert separated.stats["threshold_search"]["best_silhouette"] >= 0.25

    # Random words: no group structure at all, so the silhouette is not trusted.
    rng = random.Random(1)
    vocabulary = [f"w{i}" for i in range(400)]
    conversations = [Conversation(n, tuple(Message(n, i, "customer" if i % 2 == 0 else "assistant",
                                                   " ".join(rng.sample(vocabulary, 6)), "x")
                                           for i in range(4))) for n in range(20)]
    noise = Dataset(conversations, "noise")
    result = label_with("embeddings", noise, embedder=HashingEmbedder())
    assert result.stats["threshold_search"]["criterion"] == "neighbors"


def test_neighbor_threshold_is_the_quantile_of_nearest_neighbour_distances():
    from igft.discover.clustering import cosine_distance_matrix, neighbor_threshold

    vectors = np.eye(4)[[0, 0, 1, 2]] * 1.0
    vectors[1] = np.array([0.8, 0.6, 0, 0])  # cosine distance 0.2 to row 0
    dist = cosine_distance_matrix(vectors)
    nearest = np.array([0.2, 0.2, 0.4, 1.0])  # rows 2, 3: row 1 is 0.4 away from row 2 (0.6 similarity)
    assert np.allclose(np.sort(np.where(np.eye(4, dtype=bool), np.inf, dist).min(axis=1)), np.sort(nearest))
    assert neighbor_threshold(dist, 0.5) == pytest.approx(np.quantile(nearest, 0.5))


def test_cross_role_pairs_are_never_merged():
    from igft.discover.clustering import average_linkage, cosine_distance_matrix, cut_tree

    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    dist = cosine_distance_matrix(vectors, ["customer", "assistant", "customer"])
    labels = cut_tree(average_linkage(dist), 3, threshold=1.5)
    assert labels[0] != labels[1]  # identical texts, but different roles


def test_hdbscan_noise_becomes_singletons(dataset):
    result = label_with("embeddings", dataset, embedder=HashingEmbedder(), method="hdbscan", min_cluster_size=5)
    assert len(result.labels) == dataset.n_messages
    assert ami(dataset, result) > 0.5


def test_igft_label_cli_runs_the_embedding_labeler(dataset, tmp_path):
    from igft.cli import main

    data = dataset.save(tmp_path / "data.csv")
    code = main(["label", "--data", str(data), "--labeler", "embeddings", "--embedder", "hashing", "--mode", "live",
                 "--out", str(tmp_path / "out"), "--option", "method=kmeans", "--option", "n_clusters=6",
                 "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_pred_intents"] == 6 and report["AMI"] > 0.9


def test_hybrid_constant_name_from_a_weak_model_does_not_collapse_the_labels(dataset):
    plain = label_with("embeddings", dataset, embedder=HashingEmbedder())
    result = label_with("hybrid", dataset, embedder=HashingEmbedder(),
                        lm=ScriptedLM(lambda r: "No" if "Group B" in r.messages[-1]["content"] else '{"intent": "report_problem"}'))
    assert result.stats["n_intents"] == plain.stats["n_intents"]
    _, ours = gold_and_pred(dataset, result)
    _, theirs = gold_and_pred(dataset, plain)
    assert adjusted_mutual_info_score(ours, theirs) == pytest.approx(1.0)
    assert all(is_snake_case(n) for n in result.catalog["intent"])


def test_too_many_messages_for_pairwise_clustering_fail_early(dataset, monkeypatch):
    import igft.discover.embedding as embedding

    monkeypatch.setattr(embedding, "MAX_PAIRWISE_MESSAGES", 10)
    with pytest.raises(DiscoveryConfigError, match="method=kmeans"):
        label_with("embeddings", dataset, embedder=HashingEmbedder())
    assert label_with("embeddings", dataset, embedder=HashingEmbedder(), method="kmeans", n_clusters=6).labels


def test_threshold_is_calibrated_within_roles_even_when_roles_may_mix(dataset):
    # The search runs on the role-split tree either way, so "customer vs assistant" (a strong
    # two-group structure once the role prefix is embedded) can never pass for the intents.
    split = label_with("embeddings", dataset, embedder=HashingEmbedder(), context="role")
    mixed = label_with("embeddings", dataset, embedder=HashingEmbedder(), context="role", split_roles=False)
    assert mixed.stats["threshold"] == split.stats["threshold"]
    assert mixed.stats["n_intents"] >= 6 and ami(dataset, mixed) > 0.9


def test_hybrid_records_and_replays_through_a_cassette(dataset, tmp_path):
    from igft.cli import main

    data = dataset.save(tmp_path / "data.csv")
    outputs = []
    for mode in ("record", "replay"):
        out = tmp_path / mode
        code = main(["label", "--data", str(data), "--labeler", "hybrid", "--llm", "scripted", "--embedder", "hashing",
                     "--mode", mode, "--cassette", str(tmp_path / "cassette"), "--out", str(out), "--no-progress"])
        assert code == 0
        outputs.append((out / "labels.csv").read_text())
        stats = json.loads((out / "stats.json").read_text())
        assert stats["calls"] >= stats["n_proposed_clusters"] > 0
    assert outputs[0] == outputs[1]
    assert (tmp_path / "cassette" / "lm.jsonl").stat().st_size > 0


def test_hybrid_recording_writes_run_json_and_replays_with_no_flags(dataset, tmp_path):
    # The recording's labeler and options (here max_tokens and max_merge_checks, which shape the
    # requests) are in run.json, so `igft label --cassette DIR --out OUT` alone replays it exactly.
    from igft.cli import main

    data = dataset.save(tmp_path / "data.csv")
    cassette = tmp_path / "cassette"
    code = main(["label", "--data", str(data), "--labeler", "hybrid", "--llm", "scripted", "--embedder", "hashing",
                 "--mode", "record", "--cassette", str(cassette), "--out", str(tmp_path / "record"), "--no-progress",
                 "--option", "max_tokens=20", "--option", "max_merge_checks=3"])
    assert code == 0
    run = json.loads((cassette / "run.json").read_text())
    assert run["labeler"] == "hybrid" and run["llm"] == "scripted" and run["embedder"] == "hashing"
    assert run["options"] == {"max_tokens": "20", "max_merge_checks": "3"} and run["data"] == str(data)
    assert main(["label", "--cassette", str(cassette), "--out", str(tmp_path / "replay"), "--no-progress"]) == 0
    assert (tmp_path / "replay" / "labels.csv").read_text() == (tmp_path / "record" / "labels.csv").read_text()
    # the options are in the requests: another max_tokens misses the cassette
    assert main(["label", "--cassette", str(cassette), "--out", str(tmp_path / "miss"), "--no-progress",
                 "--option", "max_tokens=21"]) != 0
    # a different labeler does not inherit the hybrid's options (embeddings has no max_tokens)
    assert main(["label", "--cassette", str(cassette), "--out", str(tmp_path / "other"), "--no-progress",
                 "--labeler", "embeddings"]) == 0
