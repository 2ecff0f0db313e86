"""Exact inner-product top-k with torch: the GPU path where FAISS has no usable GPU build (faiss-cpu, or
faiss-gpu wheels without kernels for the card), with the same `search` contract as a FAISS index."""
from __future__ import annotations

import numpy as np
import torch


class TorchFlatSearch:
    """All candidate vectors on one device; queries searched in blocks so the score matrix stays bounded."""

    def __init__(self, vectors: np.ndarray, device: str, dtype: torch.dtype = torch.float32,
                 block_bytes: int = 1 << 30) -> None:
        self.device = device
        self.candidates = torch.from_numpy(np.ascontiguousarray(vectors, np.float32)).to(device, dtype)
        self.ntotal = len(vectors)
        self._block = max(1, block_bytes // (4 * max(self.ntotal, 1)))

    @torch.inference_mode()
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, rows), each (n, k), best first; FAISS's contract (rows of -1 never occur: k <= ntotal)."""
        k = min(k, self.ntotal)
        sims, rows = [], []
        for start in range(0, len(queries), self._block):
            q = torch.from_numpy(np.ascontiguousarray(queries[start:start + self._block], np.float32))
            scores = q.to(self.device, self.candidates.dtype) @ self.candidates.T
            top = torch.topk(scores.float(), k, dim=1, sorted=True)
            sims.append(top.values.cpu().numpy())
            rows.append(top.indices.cpu().numpy())
        if not sims:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(sims), np.concatenate(rows).astype(np.int64)
