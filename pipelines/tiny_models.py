"""Tiny random-weight models built on the spot: they exercise the real loading and scoring code offline.

A tiny judge is a Qwen2 causal LM (hidden 128, 2 layers) with a byte-level BPE tokenizer trained on the
judge prompt and a sample of texts, saved as an ordinary model folder. Its scores mean nothing; they only let
the machinery run. Point `--judge-model` at a real chat model folder for real scores.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Iterable

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _training_texts(extra: Iterable[str]) -> list[str]:
    from transforms.judge_prompt import INSTRUCTION
    base = [INSTRUCTION, "Query:", "Candidate:", "Yes", "No", "user", "assistant", "system"]
    return base * 20 + list(extra)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer, trained here, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_texts(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast


def build_tiny_judge(output: str, texts: Iterable[str] = (), seed: int = 0, init_std: float = 0.4) -> str:
    """Saves a tiny Qwen2 judge to `output`. A large init std spreads P(Yes) over (0, 1) so the
    false-negative filter has something to filter."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(texts)
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         initializer_range=init_std, tie_word_embeddings=True,
                         bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(config).eval()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    with open(os.path.join(output, "judgemine_tiny.json"), "w", encoding="utf-8") as f:
        json.dump({"kind": "tiny-random-judge", "seed": seed, "init_std": init_std}, f)
    return output


def _sample_texts(paths: list[str]) -> list[str]:
    texts: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    texts.extend(v for v in row.values() if isinstance(v, str))
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random-weight judge model folder.")
    parser.add_argument("--output", required=True)
    parser.add_argument("--texts", action="append", default=[], help="JSONL files whose strings train the BPE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_judge(args.output, _sample_texts(args.texts), args.seed))


if __name__ == "__main__":
    main()
