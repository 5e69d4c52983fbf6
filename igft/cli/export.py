"""`igft export --adapter DIR --merge --out DIR`: a standalone merged model (loads in transformers and vLLM)."""
from __future__ import annotations

import argparse

from igft.errors import IgftError


def _export(args: argparse.Namespace) -> int:
    from igft.finetune.export import merge_adapter

    if not args.merge:
        raise IgftError("igft export writes merged models only: add --merge (an adapter folder already serves "
                        "as is with vllm serve --enable-lora --lora-modules NAME=ADAPTER_DIR)")
    out = merge_adapter(args.adapter, args.out, base_model=args.model, dtype=args.dtype)
    print(f"merged model: {out} (load: AutoModelForCausalLM.from_pretrained('{out}'); serve: vllm serve {out})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="merge a LoRA adapter into its base model and save it",
                              description="Merge a LoRA adapter (adapter/ of igft finetune) into its base model "
                                          "and write a standalone model folder.")
    p.add_argument("--adapter", required=True, help="adapter folder (with adapter_config.json)")
    p.add_argument("--merge", action="store_true", help="merge the LoRA weights into the base (required)")
    p.add_argument("--out", required=True, help="new folder for the merged model")
    p.add_argument("--model", default=None, help="base model (default: the one the adapter was trained on)")
    p.add_argument("--dtype", default=None, help="weights dtype to write: float32 | bfloat16 | float16 (default: as loaded)")
    p.set_defaults(func=_export)
