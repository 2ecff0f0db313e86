"""The training objective the shards are made for (docs/SPEC.md section 7), as the contract between the
shards and a trainer, not a trainer: the judge's scores are a soft target for the embedding similarities.

P = softmax(cos(q, [pos, negs]) / tau), Q = softmax([s_pos, s_negs] / tau), loss = (KL(P||Q) + KL(Q||P)) / 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TAU = 0.02  # the paper's temperature
K = 8  # negatives per query in training, of the 10 stored


def alignment_loss(query: torch.Tensor, candidates: torch.Tensor, scores: torch.Tensor,
                   tau: float = TAU) -> torch.Tensor:
    """Mean symmetric KL over the batch.

    query: [B, d] embeddings; candidates: [B, 1 + k, d], the positive first (as `collate_shards` orders
    `scores`); scores: [B, 1 + k] judge scores. Embeddings need not be normalised: cosine is taken here."""
    if candidates.dim() != 3 or scores.shape != candidates.shape[:2] or query.shape[0] != scores.shape[0]:
        raise ValueError(f"shapes query {tuple(query.shape)}, candidates {tuple(candidates.shape)}, scores "
                         f"{tuple(scores.shape)}: expected [B, d], [B, 1 + k, d], [B, 1 + k]")
    cos = F.cosine_similarity(query.unsqueeze(1).float(), candidates.float(), dim=-1)
    log_p = F.log_softmax(cos / tau, dim=-1)
    log_q = F.log_softmax(scores.float() / tau, dim=-1)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
    return ((kl_pq + kl_qp) / 2).mean()
