"""Stage 2: intent-guided fine-tuning (SFT data, LoRA/QLoRA training, generation, export, scores).

    from igft.finetune.model_loading import load_causal_lm, make_lora_config, select_backend
    from igft.finetune.chat_template import install_training_template, render_prompt
    from igft.finetune.sft_data import build_sft_data
    from igft.finetune.config import FinetuneConfig
    from igft.finetune.train import train
    from igft.finetune.generate import evaluation_samples, generate_predictions, VLLMGenerator
    from igft.finetune.export import merge_adapter
    from igft.finetune.scores import score_predictions

Submodules import torch / transformers / TRL lazily, so `import igft.finetune` stays cheap.
"""
