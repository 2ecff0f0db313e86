"""The report's figures, drawn with matplotlib (Agg, no display) and returned as PNG bytes to embed."""
from __future__ import annotations

import io
from typing import Any

import numpy as np


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    """pyplot off screen, with mathtext off: a subset named `price_$5_to_$10` is text, not a formula to parse."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt
    return plt


def score_histograms(per_subset: dict[str, tuple[np.ndarray, np.ndarray]], low: float, high: float) -> bytes:
    """Positive and (judged, non-fallback) negative judge scores, one panel per subset, each group normalised to
    its own share per bin: a subset's few positives stay visible beside its K-fold more negatives."""
    plt = _pyplot()
    n = max(len(per_subset), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    bins = np.linspace(low, high, 41)
    for ax, (name, (pos, neg)) in zip(axes.flat, per_subset.items()):
        for values, label, color in ((neg, "negatives", "tab:red"), (pos, "positives", "tab:blue")):
            weights = np.full(values.size, 1.0 / values.size) if values.size else None
            ax.hist(values, bins=bins, weights=weights, alpha=0.6, label=f"{label} ({values.size:,})", color=color)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("judge score")
        ax.set_ylabel("share of the group")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(per_subset):]:
        ax.axis("off")
    return _png(fig)


def bars(labels: list[str], values: list[float], xlabel: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(len(labels), 2) + 0.8))
    ax.barh(labels, values, color="tab:purple")
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    return _png(fig)


def unique_negatives(counts: np.ndarray, m: int) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(1, m + 1), np.bincount(counts, minlength=m + 1)[1:m + 1], color="tab:green")
    ax.set_xlabel("distinct negatives in the row")
    ax.set_ylabel("rows")
    return _png(fig)


def against_score(rank: np.ndarray, similarity: np.ndarray, score: np.ndarray) -> bytes:
    """Retrieval rank and similarity against the judge's score, one point per retrieved candidate."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, x, name in ((left, rank, "retrieval rank"), (right, similarity, "retrieval similarity")):
        ax.scatter(x, score, s=3, alpha=0.25, color="tab:gray", rasterized=True)
        ax.set_xlabel(name)
        ax.set_ylabel("judge score")
    ranks = np.unique(rank)
    left.plot(ranks, [score[rank == r].mean() for r in ranks], color="tab:red", label="mean per rank")
    if ranks.size:
        left.legend(fontsize=8)
    return _png(fig)
