"""Judge throughput on a GPU: the transformers backend on a random-weight model of the real judge's shape.

The language model of Qwen2.5-VL-7B-Instruct (hidden 3584, 28 layers, GQA 28/4, vocab 152064) in bf16 with
random weights: the numbers are honest throughput, the scores meaningless. Text-only pairs: the VLM judge with
image pairs is not implemented yet (issue "Images everywhere"). Prints one JSON line per batch size.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from bench.sample_pairs import sample_pairs
from pipelines.tiny_models import build_tokenizer
from transforms.judge_backends import TransformersJudge

QWEN25_VL_7B_LM = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768, rope_theta=1e6,
                       rms_norm_eps=1e-6, tie_word_embeddings=False)


def build_model(path: str, texts: list[str]) -> None:
    tokenizer = build_tokenizer(texts, vocab_size=4096)
    config = Qwen2Config(**QWEN25_VL_7B_LM, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default="/tmp/qwen25-vl-7b-lm-random")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-sizes", default="32,64,128")
    args = parser.parse_args()
    queries, candidates = sample_pairs(args.pairs)
    t0 = time.time()
    build_model(args.model_dir, [q.text for q in queries] + [c.text for c in candidates])
    print(json.dumps({"built_and_saved_s": round(time.time() - t0, 1)}), flush=True)
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        t0 = time.time()
        judge = TransformersJudge(args.model_dir, bs, "bfloat16", "cuda")
        load_s = time.time() - t0
        prompts = [judge.prompt(q, c) for q, c in zip(queries, candidates)]
        tokens = sum(len(judge.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        judge.score(queries[:bs], candidates[:bs])  # warm-up
        torch.cuda.synchronize()
        t0 = time.time()
        scores = judge.score(queries, candidates)
        torch.cuda.synchronize()
        secs = time.time() - t0
        print(json.dumps({"card": torch.cuda.get_device_name(), "batch_size": bs, "pairs": len(scores),
                          "pairs_per_s": round(len(scores) / secs, 1), "prompt_tokens_per_s": round(tokens / secs),
                          "mean_prompt_tokens": round(tokens / len(prompts), 1), "load_s": round(load_s, 1),
                          "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)
        del judge
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
