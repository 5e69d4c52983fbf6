"""One home for search options: `igft optimize` flags, defaults and run.json come from the config dataclasses."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from igft.cli import build_parser, main
from igft.optimizers import HyperbandConfig, SEEConfig, SearchSettings
from igft.optimizers.command import OptimizeRequest, backbone_config, resolve
from igft.optimizers.iterative import IterativeConfig
from igft.optimizers.options import OptionError, coerce, defaults, options


def optimize_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["optimize"]


@pytest.mark.parametrize("cls", [SearchSettings, IterativeConfig, SEEConfig, HyperbandConfig])
def test_every_config_field_with_help_is_one_flag_with_that_help(cls):
    actions = {a.dest: a for a in optimize_parser()._actions}
    for f in dataclasses.fields(cls):
        if f.name in ("warm_start", "see"):
            continue
        assert f.name in actions, f.name
        option = options()[f.name]
        assert option.help in actions[f.name].help
        if option.owner is cls:  # a name two configs share (r, lagged_feedback) takes its first owner's help
            assert option.help == f.metadata["help"]
        assert actions[f.name].default is None  # None = the recorded run's value, else the library default


def test_library_and_cli_defaults_are_equal():
    see = defaults("see")
    assert see["population_size"] == SEEConfig().population_size and see["split"] == SearchSettings().split
    assert defaults("hyperband-see")["phases"] == HyperbandConfig().see.phases
    built = backbone_config("see", resolve(OptimizeRequest(algo="see", out="x", data="d.csv", overrides={}))["options"])
    assert built == SEEConfig()
    built = backbone_config("random", resolve(OptimizeRequest(algo="random", out="x", data="d.csv"))["options"])
    assert built == IterativeConfig()


def test_run_json_values_round_trip_and_unknown_names_are_rejected():
    opts = resolve(OptimizeRequest(algo="see", out="x", data="d.csv", overrides={"split": [0.3, 0.4, 0.3]}))["options"]
    assert opts["split"] == (0.3, 0.4, 0.3)
    assert coerce(json.loads(json.dumps({"phases": ["init"]}))) == {"phases": ("init",)}
    with pytest.raises(OptionError, match="unknown optimize option"):
        coerce({"popluation_size": 3})


def test_bad_split_flag_exits_2_in_one_line(tmp_path, capsys):
    code = main(["optimize", "--algo", "random", "--llm", "scripted", "--embedder", "hashing", "--mode", "record",
                 "--cassette", str(tmp_path / "c"), "--split", "0.5", "0.5", "0.5", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sum to 1" in err


def test_check_names_the_bad_key_and_the_kind_or_choices():
    from igft.optimizers.options import check

    assert check({"split": [0.3, 0.4, 0.3], "phases": ["init"], "max_calls": None}) == \
        {"split": (0.3, 0.4, 0.3), "phases": ("init",), "max_calls": None}
    for values, fragment in [({"feedbak_rounds": 3}, "unknown option(s) ['feedbak_rounds']; valid: ['adaptive'"),
                             ({"eta": "two"}, "eta: expected int, got 'two'"),
                             ({"eta": 2.5}, "eta: expected int"),
                             ({"adaptive": 1}, "adaptive: expected bool"),
                             ({"split": [0.5, 0.5]}, "split: expected a list of 3 float"),
                             ({"missing": "skip"}, "missing: 'skip' is not one of ['cluster', 'drop', 'singleton']"),
                             ({"population_size": None}, "population_size may not be null"),
                             ({"max_calls": -1}, "max_calls must be 0 or more")]:
        with pytest.raises(OptionError) as err:
            check(values, "search.options")
        assert str(err.value).startswith("search.options: ") and fragment in str(err.value), str(err.value)


def test_budget_flags_are_the_live_ledger_budget_with_one_help_each():
    from igft.optimizers.budget import LiveBudget, SearchBudget

    table = options()
    for name in ("max_calls", "max_tokens", "max_dollars"):
        # one option per name: the live budget (as in `igft label`), not SearchBudget's library-only caps
        assert table[name].owner is LiveBudget and table[name].default is None
    assert "live" in table["max_calls"].help and "--no-resume" in table["max_calls"].help
    assert table["max_trials"].owner is SearchBudget
    actions = {a.dest: a for a in optimize_parser()._actions}
    assert table["max_calls"].help in actions["max_calls"].help


def test_pipeline_search_options_reach_the_optimize_request(tmp_path, monkeypatch):
    import igft.pipeline.search as pipeline_search
    from igft.optimizers.history import History
    from igft.optimizers.results import SearchResult
    from igft.pipeline import config_from_dict

    seen = []

    def fake_run(request):
        seen.append(request)
        return argparse.Namespace(result=SearchResult(algo=request.algo, history=History()))

    monkeypatch.setattr(pipeline_search, "run_optimize", fake_run)
    cfg = config_from_dict({"data": "mine.csv", "mode": "live", "search": {
        "backbones": ["see"], "max_calls": 50, "options": {"feedback_rounds": 3, "split": [0.3, 0.4, 0.3],
                                                           "feedback_gold": "names"}}})
    pipeline_search.run_backbones(cfg, tmp_path)
    (request,) = seen
    assert request.overrides["feedback_rounds"] == 3 and request.overrides["max_calls"] == 50
    resolved = resolve(request)["options"]
    assert resolved["split"] == (0.3, 0.4, 0.3) and resolved["feedback_gold"] == "names"
    assert backbone_config("see", resolved).feedback_rounds == 3
