"""Which FAISS index for which pool, how much of the pool trains it, and its search-time parameters. The pool
thresholds follow FAISS's guidance (its wiki's index-choice page) and `make bench-retrieve`'s figures at 100k
and 1M (bench/RESULTS.md, "Retrieval at any pool size")."""
from __future__ import annotations

import math

import faiss

# --index-factory auto: (largest pool, factory) in order. Above 5M, PQ codes (64 bytes a vector) find the
# candidates and 8-bit scalar codes (d bytes) re-rank 4 x K of them: at 100k PQ alone kept 3% of the exact run's
# mined negatives (its scores are approximate), with the refine step 80%, recall@50 0.70 -> 0.99; OPQ gained no
# recall there at 2.3x the build time (bench/RESULTS.md). {nlist}: a power of two near 4 * sqrt(pool) (FAISS's
# guideline: 4 to 16 * sqrt(n) lists).
AUTO = ((200_000, "Flat"), (5_000_000, "IVF{nlist},Flat"), (math.inf, "IVF{nlist},PQ64,Refine(SQ8)"))
POINTS_PER_CENTROID = 256  # FAISS k-means samples at most this many points per centroid (max_points_per_centroid)
PQ_CODES = 256  # 8-bit sub-quantizers: 256 centroids each
NPROBE_SHARE = 16  # nprobe = nlist / 16 unless set: a margin for real embeddings (bench-retrieve's clusters reach
# recall@50 1.0 from nprobe 4 on, too easy to tune it by)
EF_SEARCH_FACTOR = 2  # efSearch = 2 x the results asked for, at least 64, unless set
REFINE_FACTOR = 4  # a refine step (",Refine(SQ8)", ",RFlat") re-ranks 4 x the results asked for with finer codes


def auto_factory(pool: int) -> tuple[str, str]:
    """(factory, why) for a pool of `pool` vectors."""
    for limit, factory in AUTO:
        if pool <= limit:
            nlist = 2 ** round(math.log2(max(4 * math.sqrt(pool), 1)))
            chosen = factory.format(nlist=nlist)
            bound = f"<= {limit:,}" if limit != math.inf else f"> {AUTO[-2][0]:,}"
            return chosen, f"pool of {pool:,} vectors {bound}: {chosen} (docs/choosing-an-index.md)"
    raise AssertionError("AUTO ends at infinity")


def training_size(index: faiss.Index) -> int:
    """FAISS's rule of thumb: 256 training points per centroid of the largest k-means inside the index (IVF
    lists, 256 codes per PQ sub-quantizer); more is subsampled by FAISS, under 39 per centroid it warns."""
    centroids = 1
    try:
        centroids = faiss.extract_index_ivf(index).nlist
    except RuntimeError:
        pass
    text = type(faiss.downcast_index(index)).__name__ + " " + _inner_names(index)
    if "PQ" in text:
        centroids = max(centroids, PQ_CODES)
    return POINTS_PER_CENTROID * centroids


def _inner_names(index: faiss.Index) -> str:
    """The index types under a transform (OPQ, PCA) or a refine step, outermost first."""
    names = []
    while isinstance(index, (faiss.IndexPreTransform, faiss.IndexRefine)):
        index = faiss.downcast_index(index.index if isinstance(index, faiss.IndexPreTransform) else index.base_index)
        names.append(type(index).__name__)
    return " ".join(names)


def search_parameters(index: faiss.Index, nprobe: int, ef_search: int, fetch: int) -> str:
    """The ParameterSpace string for this index: nprobe for an IVF index (0 = nlist / 16), efSearch for an HNSW
    graph (0 = twice what a search asks for, at least 64), k_factor_rf for a refine step; empty for an exact
    index."""
    params = []
    try:
        nlist = faiss.extract_index_ivf(index).nlist
        params.append(f"nprobe={nprobe or max(1, nlist // NPROBE_SHARE)}")
    except RuntimeError:
        pass
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else \
        faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        params.append(f"efSearch={ef_search or max(64, EF_SEARCH_FACTOR * fetch)}")
    if isinstance(inner, faiss.IndexRefine):
        params.append(f"k_factor_rf={REFINE_FACTOR}")
    return ",".join(params)
