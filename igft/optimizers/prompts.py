"""Every meta-prompt the backbones send to the optimizer LLM, and the parser of their answers.

The LLM is asked to put the new instruction between <instruction> tags; a model that ignores the tags
(small local models do) has its whole answer taken, trimmed to a sane length.

Feedback prompts are built from a report on the *train* split only, and `feedback_gold` decides how
much of the gold labeling they show: "examples" (default: error examples as message pairs that should
or should not share an intent, no gold intent names), "names" (also the gold names and the most
frequent gold intents, the original behaviour, for comparison) or "none" (scores and predicted counts).
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

MAX_INSTRUCTION_CHARS = 2000

_CONTEXT = ("You are optimizing the instruction of an intent-labeling system for customer-support conversations. "
            "The system reads one conversation at a time and assigns every message one snake_case intent, reusing "
            "intents from a growing catalog. Its labels are compared with gold intents using clustering metrics.")

_ANSWER = "Answer with the new instruction only, between <instruction> and </instruction>."

FEEDBACK_GOLD = ("examples", "names", "none")

FEEDBACK = _CONTEXT + """

Current instruction:
<instruction>{instruction}</instruction>

Scores of this instruction (higher is better; AMI x NCA is the objective):
{metrics}

Most frequent predicted intents (name: count):
{pred_counts}
{gold_section}
Give concise, concrete feedback: what in the instruction causes these errors and how to change it."""

APPLY_FEEDBACK = _CONTEXT + """

Current instruction:
<instruction>{instruction}</instruction>

Feedback on it:
{feedback}

Rewrite the instruction so that it follows the feedback. """ + _ANSWER

DIRECT_REWRITE = _CONTEXT + """

Current instruction:
<instruction>{instruction}</instruction>

Scores of this instruction (higher is better; AMI x NCA is the objective):
{metrics}

Most frequent predicted intents (name: count):
{pred_counts}
{gold_section}
Write an improved instruction that avoids these errors. """ + _ANSWER

LAMARCKIAN = _CONTEXT + """

Here are messages and the intents a good labeler assigned to them:
{examples}

Write the instruction that would make a labeler produce exactly these intents. """ + _ANSWER

CROSSOVER = _CONTEXT + """

Parent instruction A (score {score_a:.3f}):
<instruction>{instruction_a}</instruction>

Parent instruction B (score {score_b:.3f}):
<instruction>{instruction_b}</instruction>

Combine the strengths of both parents into one new instruction. """ + _ANSWER

EDA = _CONTEXT + """

Here is a population of instructions:
{population}

Write one new instruction that follows the common pattern of these instructions but is phrased differently. """ + _ANSWER

EDA_INDEX = _CONTEXT + """

Here are instructions sorted from worst to best (the higher the number, the better it scored):
{population}

Write one new instruction that continues the trend and should score better than all of them. """ + _ANSWER

SEMANTIC_MUTATION = """Paraphrase the following instruction: keep its meaning and every rule in it, change the wording.

<instruction>{instruction}</instruction>

""" + _ANSWER


def format_metrics(report: dict[str, Any], keys: Sequence[str] = ("AMI_x_NCA", "AMI", "NCA", "purity", "ARI",
                                                                  "pairwise_precision", "pairwise_recall",
                                                                  "coverage", "n_gold_intents", "n_pred_intents")) -> str:
    lines = [f"- {k}: {report[k]:.4f}" if isinstance(report[k], float) else f"- {k}: {report[k]}"
             for k in keys if k in report]
    return "\n".join(lines) or "- (no scores)"


def format_counts(counts: dict | None) -> str:
    return "\n".join(f"- {name}: {count}" for name, count in (counts or {}).items()) or "- (none)"


def format_errors(examples: Sequence[dict], limit: int = 20, gold_names: bool = True) -> str:
    """One line per error example of igft.metrics: kind, both messages, their predicted intents, and
    their true intents only with `gold_names` (else whether the pair should share an intent)."""
    lines = []
    for ex in list(examples)[:limit]:
        if isinstance(ex, dict) and "message_a" in ex and not gold_names:
            if ex.get("kind") == "false_split":
                lines.append(f"- \"{ex['message_a']}\" / \"{ex['message_b']}\": should share one intent, "
                             f"predicted {ex.get('pred_a')} and {ex.get('pred_b')}")
            else:
                lines.append(f"- \"{ex['message_a']}\" / \"{ex['message_b']}\": should have different intents, "
                             f"both predicted {ex.get('pred_a')}")
        elif isinstance(ex, dict) and "message_a" in ex:
            lines.append(f"- {ex.get('kind', 'error')}: \"{ex['message_a']}\" (true {ex.get('gold_a')}, predicted "
                         f"{ex.get('pred_a')}) / \"{ex['message_b']}\" (true {ex.get('gold_b')}, predicted {ex.get('pred_b')})")
        else:
            lines.append("- " + (json.dumps(ex, ensure_ascii=False) if isinstance(ex, dict) else str(ex)))
    return "\n".join(lines) or "- (no errors sampled)"


def gold_section(report: dict[str, Any], feedback_gold: str = "examples") -> str:
    """The part of a feedback prompt that shows gold information (see the module docstring)."""
    if feedback_gold not in FEEDBACK_GOLD:
        raise ValueError(f"feedback_gold must be one of {', '.join(FEEDBACK_GOLD)}, got {feedback_gold!r}")
    if feedback_gold == "none":
        return ""
    examples = report.get("error_examples", [])
    if feedback_gold == "names":
        return ("\nMost frequent true intents (name: count):\n" + format_counts(report.get("gold_counts")) +
                "\n\nErrors (false splits: same true intent, different predicted intents; false merges: different "
                "true intents, same predicted intent):\n" + format_errors(examples) + "\n")
    return "\nMessage pairs the labeling got wrong:\n" + format_errors(examples, gold_names=False) + "\n"


def feedback_prompt(instruction: str, report: dict[str, Any], feedback_gold: str = "examples") -> str:
    return FEEDBACK.format(instruction=instruction, metrics=format_metrics(report),
                           pred_counts=format_counts(report.get("pred_counts")),
                           gold_section=gold_section(report, feedback_gold))


def apply_feedback_prompt(instruction: str, feedback: str) -> str:
    return APPLY_FEEDBACK.format(instruction=instruction, feedback=feedback.strip() or "(no feedback)")


def direct_rewrite_prompt(instruction: str, report: dict[str, Any], feedback_gold: str = "examples") -> str:
    return DIRECT_REWRITE.format(instruction=instruction, metrics=format_metrics(report),
                                 pred_counts=format_counts(report.get("pred_counts")),
                                 gold_section=gold_section(report, feedback_gold))


def lamarckian_prompt(pairs: Sequence[tuple[str, str]]) -> str:
    examples = "\n".join(f"- {text} -> {intent}" for text, intent in pairs)
    return LAMARCKIAN.format(examples=examples)


def crossover_prompt(instruction_a: str, score_a: float, instruction_b: str, score_b: float) -> str:
    return CROSSOVER.format(instruction_a=instruction_a, score_a=score_a, instruction_b=instruction_b, score_b=score_b)


def eda_prompt(instructions: Sequence[str]) -> str:
    return EDA.format(population="\n".join(f"- {text}" for text in instructions))


def eda_index_prompt(instructions_worst_to_best: Sequence[str]) -> str:
    return EDA_INDEX.format(population="\n".join(f"{i}. {text}" for i, text in enumerate(instructions_worst_to_best, 1)))


def semantic_mutation_prompt(instruction: str) -> str:
    return SEMANTIC_MUTATION.format(instruction=instruction)


_TAGGED = re.compile(r"<instruction>(.*?)(?:</instruction>|$)", re.S | re.I)


def extract_instruction(text: str, fallback: str) -> str:
    """The instruction in an LLM answer: the tagged part, else the whole answer; `fallback` if empty."""
    match = _TAGGED.search(text or "")
    candidate = match.group(1) if match else (text or "")
    candidate = candidate.strip().strip("`").strip()
    if not candidate:
        return fallback
    return candidate[:MAX_INSTRUCTION_CHARS]
