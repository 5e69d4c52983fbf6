"""Model files that ship inside igft itself (package data, not code).

igft_labeler/: a LoRA adapter (fp16, about 2 MB) on the bundled SmolLM2-135M-Instruct that labels
conversations in GIFA's protocol; loaded by `--llm local:igft-labeler` through
igft.llm.local_models.labeler_adapter_path. Its README names the training data and licences.
"""
