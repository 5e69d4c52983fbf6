"""The whole igft pipeline in one call: Stage 1 labels and prompt search, Stage 2 fine-tuning and scores.

`igft demo`, `igft demo --config FILE.yaml` and the three notebooks all go through `run_pipeline` or its
steps, so nothing lives only in a notebook.
"""
from igft.pipeline.config import ConfigError, PipelineConfig, config_from_dict, load_config
from igft.pipeline.notebook import compute_backend, find_paper_stage1, load_data, notebook_config, notebook_output_dir
from igft.pipeline.run import PipelineResult, run_pipeline, summarize
from igft.pipeline.search import run_backbones
from igft.pipeline.stage1 import compare_labelers, run_stage1
from igft.pipeline.stage2 import Stage2Result, run_stage2

__all__ = ["ConfigError", "PipelineConfig", "PipelineResult", "Stage2Result", "compare_labelers", "config_from_dict",
           "compute_backend", "find_paper_stage1", "load_data", "notebook_config", "notebook_output_dir", "load_config", "run_backbones", "run_pipeline", "run_stage1", "run_stage2", "summarize"]
