"""Packed shared-prefix scoring for the `transformers` judge (judge/packing.py says what and why): a causal LM,
or a Qwen2-VL-family VLM whose query image goes through the vision tower once per query (and each distinct
image at most once while it stays in a bounded per-worker cache), and whose M-RoPE positions are the plain
prompt's own.

Attention: one boolean (L, L) mask per packed row, broadcast over heads, through PyTorch SDPA (exact; on CPU
its fused kernel, on a GPU the memory-efficient kernel, which takes arbitrary masks). Models whose attention is
not SDPA are refused (their kernels take no custom mask) and scored unpacked.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch

from judgemine.transforms.common.images import DecodedImages
from judgemine.transforms.judge.packing import PackedRow, PairTokens, by_query, pack


def refusal(model: Any) -> str:
    """Why this model cannot be packed, or "" when it can."""
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation != "sdpa":
        return f"its attention implementation is {implementation!r}; packing needs 'sdpa' (a custom 4-D mask)"
    return ""


class PackedScorer:
    """Scores pairs as packed rows of at most `budget` tokens. `tokens_of(pair indices)` gives each pair's
    PairTokens; `forward(row)` returns the answer logits (n_ends, 2) of one row."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.computed = 0  # tokens run through the model, packed
        self.plain = 0  # tokens the same pairs would cost unpacked

    def score(self, query_keys: Sequence[Hashable], pairs: list[PairTokens],
              forward: Callable[[PackedRow], torch.Tensor]) -> np.ndarray:
        out = np.zeros((len(pairs), 2), np.float32)
        rows = pack([[pairs[i] for i in group] for group in by_query(query_keys)], self.budget)
        for row in rows:
            out[row.pairs] = forward(row).float().cpu().numpy()
            self.computed += len(row)
        self.plain += sum(len(p.tokens) for p in pairs)
        return out


def row_mask(row: PackedRow, device: str) -> torch.Tensor:
    return row.mask()[None, None].to(device)


class TextRows:
    """A causal LM's pairs: plain token ids (the chat template is the only source of special tokens), 1-D
    positions 0..n-1."""

    def __init__(self, model: Any, tokenizer: Any, answers: list[int], device: str) -> None:
        self.model, self.tokenizer, self.answers, self.device = model, tokenizer, answers, device

    def pairs(self, encoded: Sequence[list[int]]) -> list[PairTokens]:
        """Each pair's plain token ids (the prompter's) as packable tokens at positions 0..n-1."""
        return [PairTokens(i, [(t, None) for t in ids], torch.arange(len(ids))) for i, ids in enumerate(encoded)]

    @torch.inference_mode()
    def forward(self, row: PackedRow) -> torch.Tensor:
        logits = self.model(input_ids=torch.tensor([row.ids], device=self.device),
                            attention_mask=row_mask(row, self.device),
                            position_ids=row.position_ids()[None].to(self.device),
                            logits_to_keep=torch.tensor(row.ends, device=self.device)).logits[0]
        return logits[:, self.answers]


class VisionRows:
    """A Qwen2-VL-family judge (VLMInputs): placeholders expanded to each image's token count, image tokens keyed
    by their image, M-RoPE positions from the model's own get_rope_index on each plain prompt, image features
    from a bounded cache fed to the model as precomputed encoder outputs. An image's preprocessing runs twice
    (once for its token count before packing, once for its features when a row needs them and they are not
    cached); the vision tower runs once while it stays cached."""

    def __init__(self, vlm: Any, images: DecodedImages, answers: list[int], capacity: int = 512) -> None:
        self.vlm, self.images, self.answers = vlm, images, answers
        self.capacity = capacity
        self._features: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.encoded = 0  # images run through the vision tower

    def _grid(self, path: str, grids: dict[str, torch.Tensor]) -> torch.Tensor:
        if path not in grids:
            grids[path] = self.vlm.image_processor(images=[self.images.get(path)],
                                                   return_tensors="pt")["image_grid_thw"][0]
        return grids[path]

    def pairs(self, prompts: Sequence[str], paths: Sequence[list[str]]) -> list[PairTokens]:
        vlm, grids = self.vlm, dict[str, Any]()
        out = []
        for i, (prompt, own) in enumerate(zip(prompts, paths)):
            pieces = prompt.split(vlm.image_token)
            if len(pieces) - 1 != len(own):
                raise ValueError(f"{len(pieces) - 1} image placeholders for {len(own)} images")
            tokens: list[tuple[int, Hashable]] = []
            for k, piece in enumerate(pieces):
                tokens += [(t, None) for t in vlm.tokenizer(piece, add_special_tokens=False)["input_ids"]]
                if k < len(own):
                    count = int(self._grid(own[k], grids).prod()) // vlm.merge ** 2
                    tokens += [(vlm.image_token_id, own[k])] * count
            ids = torch.tensor([[t for t, _ in tokens]])
            if own:
                types = (ids == vlm.image_token_id).int()
                thw = torch.stack([grids[p] for p in own])
                positions = vlm.model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=thw)[0][:, 0]
            else:
                positions = torch.arange(ids.shape[1]).expand(3, -1)
            out.append(PairTokens(i, tokens, positions))
        return out

    def _encode(self, paths: list[str]) -> list[torch.Tensor]:
        """Each image's features, computing the missing ones in one vision-tower call."""
        missing = list(dict.fromkeys(p for p in paths if p not in self._features))
        if missing:
            vision = self.vlm.image_processor(images=[self.images.get(p) for p in missing], return_tensors="pt")
            pixels = vision["pixel_values"].to(self.vlm.device, self.vlm.model.dtype)
            grids = vision["image_grid_thw"].to(self.vlm.device)
            features = self.vlm.model.model.get_image_features(pixels, grids, return_dict=True).pooler_output
            for p, f in zip(missing, features):
                self._features[p] = f
            self.encoded += len(missing)
        found = []
        for p in paths:
            self._features.move_to_end(p)
            found.append(self._features[p])
        while len(self._features) > max(self.capacity, len(set(paths))):
            self._features.popitem(last=False)
        return found

    @torch.inference_mode()
    def forward(self, row: PackedRow) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        device = self.vlm.device
        encoder = {}
        if row.images:
            features = self._encode([str(p) for p in row.images])
            encoder["image"] = BaseModelOutputWithPooling(pooler_output=tuple(features))
        logits = self.vlm.model(input_ids=torch.tensor([row.ids], device=device),
                                attention_mask=row_mask(row, device),
                                position_ids=row.position_ids()[:, None].to(device), mm_encoder_outputs=encoder,
                                logits_to_keep=torch.tensor(row.ends, device=device)).logits[0]
        return logits[:, self.answers]
