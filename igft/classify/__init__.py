"""Intent classifiers: tasks (CSV + schema), a generative (Q)LoRA classifier with constrained decoding,
a classification head with class-weighted loss, classic and prompting baselines, evaluation, and the
OpenAI fine-tuning workflow. Heavy dependencies (torch, transformers) load only when a model is built.
"""
from igft.classify.base import build_classifier, load_classifier, save_classifier
from igft.classify.evaluate import comparison_table, evaluate_classifier, score_predictions
from igft.classify.run import evaluate_saved, train_classifier
from igft.classify.task import FieldSpec, Task, TaskSchema, load_task

__all__ = ["FieldSpec", "Task", "TaskSchema", "build_classifier", "comparison_table", "evaluate_classifier",
           "evaluate_saved", "load_classifier", "load_task", "save_classifier", "score_predictions", "train_classifier"]
