"""Judge throughput on a GPU: the transformers backend on random-weight models of the real judge's shape.

`--model lm`: the language model of Qwen2.5-VL-7B-Instruct (hidden 3584, 28 layers, GQA 28/4, vocab 152064)
as a causal LM, text pairs. `--model vl`: the whole Qwen2.5-VL-7B-Instruct architecture (its 32-layer vision
tower included) through the VLM judge, with text-only pairs and with image pairs (the multimodal sample's real
photos, at most 512*28*28 pixels each). bf16, random weights: honest throughput, meaningless scores. Prints one
JSON line per (pairs kind, batch size or packed-row budget).

`--packing none,prefix` measures both scoring paths (prefix: a query's pairs packed behind one copy of their
shared prefix, `--pack-tokens` per row); the figures include the model FLOPs on the tokens actually computed
and their fraction of the card's dense bf16 peak (`--peak-tflops`, 989 for an H200).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from judgemine.testing.sample_pairs import image_pairs, sample_pairs
from judgemine.testing.tiny_models import QWEN_VL_CHAT_TEMPLATE, VISION_TOKENS, build_tokenizer
from judgemine.transforms.judge.backends.transformers import TransformersJudge, TransformersOptions
from judgemine.transforms.judge.base import JudgeModel

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


QWEN25_VL_7B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_channels=3,
                           hidden_act="silu")


def build_vl_model(path: str, texts: list[str], device: str = "cuda") -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    try:
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Qwen2VLImageProcessor as ImageProcessor
    tokenizer = build_tokenizer(texts, vocab_size=4096, extra_special=VISION_TOKENS)
    tokenizer.chat_template = QWEN_VL_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    text = {k: v for k, v in QWEN25_VL_7B_LM.items() if k != "tie_word_embeddings"}
    config = Qwen2_5_VLConfig(
        text_config=dict(**text, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=QWEN25_VL_7B_VISION, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    ImageProcessor(min_pixels=4 * 28 * 28, max_pixels=512 * 28 * 28).save_pretrained(path)
    del model
    torch.cuda.empty_cache()


def measure(judge, kind: str, size: int, queries, candidates, load_s: float, peak_tflops: float) -> None:
    prompts = [judge.prompter.text(q, c) for q, c in zip(queries, candidates)]
    text_tokens = sum(len(judge.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    judge.score(queries[:64], candidates[:64])  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = judge.counters().get("judge_tokens_computed", 0)
    t0 = time.time()
    scores = judge.score(queries, candidates)
    torch.cuda.synchronize()
    secs = time.time() - t0
    computed = judge.counters().get("judge_tokens_computed", 0) - before or None
    lm = judge.model if hasattr(judge, "model") else judge.vlm.model.model.language_model
    params = sum(p.numel() for p in lm.parameters())
    tflops = 2 * params * computed / secs / 1e12 if computed else None
    print(json.dumps({"card": torch.cuda.get_device_name(), "pairs_kind": kind,
                      "packing": "none" if judge.packer is None else "prefix", "batch_or_row_tokens": size,
                      "pairs": len(scores), "pairs_per_s": round(len(scores) / secs, 1),
                      "text_tokens_per_s": round(text_tokens / secs),
                      "mean_text_tokens": round(text_tokens / len(prompts), 1),
                      "tokens_computed_per_pair": round(computed / len(scores), 1) if computed else None,
                      "lm_tflops_on_computed_tokens": round(tflops, 1) if tflops else None,
                      "fraction_of_bf16_peak": round(tflops / peak_tflops, 3) if tflops else None,
                      "load_s": round(load_s, 1),
                      "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["lm", "vl"], default="lm")
    parser.add_argument("--model-dir", default="")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--image-pairs", type=int, default=512)
    parser.add_argument("--batch-sizes", default="32,64,128", help="prompts per forward pass, unpacked")
    parser.add_argument("--packing", default="none", help="comma list of none, prefix")
    parser.add_argument("--pack-tokens", default="4096,16384", help="tokens per packed row")
    parser.add_argument("--per-query", type=int, default=16, help="pairs per query (the pipeline: K + 1 = 51)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the card's dense bf16 peak")
    args = parser.parse_args()
    model_dir = args.model_dir or f"/tmp/qwen25-vl-7b-{args.model}-random"
    queries, candidates = sample_pairs(args.pairs, args.per_query)
    image_root, image_queries, image_candidates = image_pairs(args.image_pairs, args.per_query)
    texts = [s.text for s in (*queries, *candidates, *image_queries, *image_candidates)]
    t0 = time.time()
    (build_vl_model if args.model == "vl" else build_model)(model_dir, texts)
    print(json.dumps({"model": args.model, "built_and_saved_s": round(time.time() - t0, 1)}), flush=True)
    runs = [(packing, int(size)) for packing in args.packing.split(",")
            for size in (args.batch_sizes if packing == "none" else args.pack_tokens).split(",")]
    for packing, size in runs:
        t0 = time.time()
        model = JudgeModel(model_dir, "bfloat16", "cuda", size if packing == "none" else 16, image_root)
        judge = TransformersJudge.load(model, TransformersOptions(packing, size if packing == "prefix" else 4096))
        load_s = time.time() - t0
        measure(judge, "text", size, queries, candidates, load_s, args.peak_tflops)
        if args.model == "vl":
            measure(judge, "image", size, image_queries, image_candidates, load_s, args.peak_tflops)
        del judge
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
