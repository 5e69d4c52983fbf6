"""One scored candidate instruction of a prompt search.

A Trial carries everything needed to resume a search (its `slot`, a stable name of the place the
trial has in the search's control flow) and to analyse it afterwards (report, cost, lineage).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Trial:
    """A candidate instruction and its score.

    id: position in the history (0, 1, ...). slot: stable name of the trial's place in the control flow
    (e.g. "see/feedback_1/3"); a resumed search reuses the trial stored under the same slot.
    r: number of validation conversations it was scored on. calls/tokens: LLM cost of generating and
    scoring it (0 when its score came from the objective cache). labels: [[conversation, index, intent], ...]
    (kept so that error-wise crossover can compare two trials' clusterings). split: the conversations it
    was scored on ("validation" for every trial of the search; "test" only for the final scores).
    feedback: the train-split score its feedback prompt was built from ({instruction, r, objective,
    report}), kept so a resumed search refills its train cache instead of labeling the train split again.
    """

    id: int
    slot: str
    phase: str
    step: int
    instruction: str
    parent_ids: list[int] = field(default_factory=list)
    operator: str = ""
    r: int = 0
    objective: float = float("nan")
    report: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    tokens: int = 0
    cached: bool = False
    labels: list[list] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    split: str = "validation"
    feedback: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Trial":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        trial = cls(**known)
        trial.objective = float("nan") if trial.objective is None else float(trial.objective)
        return trial

    @property
    def label_map(self) -> dict[tuple[int, int], str]:
        return {(int(c), int(i)): str(intent) for c, i, intent in self.labels}
