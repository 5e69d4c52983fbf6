"""`igft hyperband-schedule` reproduces the paper's three schedules (figures from the external README)."""
from __future__ import annotations

import json
import re

import pytest

from igft.cli import main
from igft.optimizers.hyperband import ScheduleError, li_schedule, paper_schedule


def readme_schedules(readme_text: str) -> list[dict]:
    pattern = re.compile(r"eta (\d+) -> x \[([\d, ]+)\], R \[([\d, ]+)\], multiplicity \[([\d, ]+)\], cost (\d+)")
    ints = lambda s: [int(v) for v in s.split(",")]
    return [{"eta": int(e), "x_list": ints(x), "R_list": ints(r), "multiplicity": ints(m), "total_cost": int(c)}
            for e, x, r, m, c in pattern.findall(readme_text)]


def test_cli_schedule_matches_the_external_readme(paper_runs, capsys):
    expected = readme_schedules((paper_runs.parent / "README.md").read_text())
    assert len(expected) == 3
    assert main(["hyperband-schedule", "--hours", "1", "--eta", "2", "3", "5", "--r-min", "4", "--r-max", "25",
                 "--n-min", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [{k: s[k] for k in expected[0]} for s in printed] == expected
    for s in printed:
        assert s["rounds"] == len(s["x_list"])


def test_schedule_skips_an_eta_whose_population_falls_below_n_min():
    small = paper_schedule(0.1, [2, 3, 5], 4, 25, 1)  # 90 evaluations: no eta fits x_last >= 1
    assert small == []
    # x_last is 2 (eta 2), 6 (eta 3), 3 (eta 5): n_min=3 drops eta 2 only.
    assert [s["eta"] for s in paper_schedule(1, [2, 3, 5], 4, 25, n_min=3)] == [3, 5]
    with pytest.raises(ScheduleError):
        paper_schedule(1, [2], r_min=10, r_max=4)


def test_li_schedule_brackets_have_equal_budgets_and_keep_one_over_eta():
    brackets = li_schedule(81, eta=3, r_min=1)
    assert [b[0] for b in brackets] == [{"n": 81, "r": 1}, {"n": 34, "r": 3}, {"n": 15, "r": 9}, {"n": 8, "r": 27},
                                        {"n": 5, "r": 81}]  # Li et al. 2018, Table 1
    for bracket in brackets:
        for low, high in zip(bracket, bracket[1:]):
            assert high["n"] == low["n"] // 3 and high["r"] == low["r"] * 3
