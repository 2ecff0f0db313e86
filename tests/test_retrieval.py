"""FAISS retrieval with exclusions against a brute-force numpy reference; embeddings are unit-norm."""
from __future__ import annotations

import numpy as np
import pytest

from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.embed.base import EmbedderSpec, RecordBatch, l2_normalise
from judgemine.transforms.embed.handler import EmbedHandler
from judgemine.transforms.retrieve.faiss_index import CandidateIndex, build_index, save_index


@pytest.fixture()
def index_dir(tmp_path):
    rng = np.random.default_rng(0)
    vectors = l2_normalise(rng.normal(size=(200, 16)))
    ids = [f"c{i:03d}" for i in range(200)]
    save_index(build_index(vectors, "Flat"), ids, str(tmp_path))
    return str(tmp_path), vectors, ids


def test_search_excluding_matches_brute_force(index_dir):
    directory, vectors, ids = index_dir
    index = CandidateIndex(directory)
    queries = l2_normalise(np.random.default_rng(1).normal(size=(5, 16)))
    sims = queries @ vectors.T
    excluded = [[ids[j] for j in np.argsort(-sims[i])[:3]] for i in range(5)]  # ban each query's top 3
    rows, found = index.search_excluding(queries, excluded, k=10)
    for i in range(5):
        want = [j for j in np.argsort(-sims[i]) if ids[j] not in excluded[i]][:10]
        assert rows[i].tolist() == want
        assert np.allclose(found[i], sims[i][want], atol=1e-5)


def test_delta_drops_near_duplicates_and_widens_the_search(index_dir):
    directory, vectors, ids = index_dir
    index = CandidateIndex(directory)
    queries = vectors[:2].copy()  # each query's best match is itself, similarity 1.0
    rows, sims = index.search_excluding(queries, [[], []], k=20, delta=0.5)
    assert (rows >= 0).all() and (sims <= 0.5).all()
    full = queries @ vectors.T
    for i in range(2):  # the best 20 at or below delta, in order
        want = [j for j in np.argsort(-full[i]) if full[i][j] <= 0.5][:20]
        assert rows[i].tolist() == want


def test_a_pool_smaller_than_k_returns_what_exists(index_dir):
    directory, _, ids = index_dir
    index = CandidateIndex(directory)
    rows, _ = index.search_excluding(np.ones((1, 16), np.float32) / 4, [ids[:150]], k=100)
    assert (rows[0, :50] >= 0).all() and (rows[0, 50:] == -1).all()  # padding only where the pool ran out
    assert not set(rows[0, :50].tolist()) & set(range(150))


def test_sentence_transformer_vectors_are_unit_norm():
    from judgemine.pipelines.settings import Settings
    handler = EmbedHandler(EmbedderSpec("sentence-transformers", Settings().resolved_embed_model, 4, "cpu"))
    embedder = handler.load_model()
    texts = ["a", "The capital of France is Paris.", "Of considerable size or extent." * 5]
    batch = RecordBatch(Chunk("queries", 0, "-"), ["1", "2", "3"], texts, ["", "", ""])
    (out,) = list(handler.run_inference([batch], embedder))
    assert out.vectors.shape == (3, 384) and np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    raw = embedder.model.encode(texts, normalize_embeddings=False)
    assert np.allclose(out.vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_torch_search_matches_faiss_and_serves_the_exclusion_search(index_dir):
    from judgemine.transforms.retrieve.torch_search import TorchFlatSearch
    directory, vectors, ids = index_dir
    index = CandidateIndex(directory, device="cpu")
    assert index.backend == "faiss-cpu"
    queries = l2_normalise(np.random.default_rng(2).normal(size=(7, 16)))
    want_sims, want_rows = index.index.search(queries, 30)
    torch_index = TorchFlatSearch(vectors, "cpu", block_bytes=4 * 200 * 3)  # 3 queries per block
    sims, rows = torch_index.search(queries, 30)
    assert (rows == want_rows).all() and np.allclose(sims, want_sims, atol=1e-5)
    excluded = [ids[:5]] * 7
    faiss_result = index.search_excluding(queries, excluded, k=12)
    index.index = torch_index
    torch_result = index.search_excluding(queries, excluded, k=12)
    assert (faiss_result[0] == torch_result[0]).all() and np.allclose(faiss_result[1], torch_result[1], atol=1e-5)
