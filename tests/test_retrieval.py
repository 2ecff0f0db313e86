"""FAISS retrieval with exclusions against a brute-force numpy reference; embeddings are unit-norm."""
from __future__ import annotations

import numpy as np
import pytest

from judgemine.transforms.common.chunks import Chunk
from judgemine.transforms.common.progress import StageWork
from judgemine.transforms.embed.base import EmbedderSpec, RecordBatch, l2_normalise
from judgemine.transforms.embed.handler import EmbedHandler
from judgemine.transforms.index.faiss_index import CandidateIndex, build_index, save_index


@pytest.fixture()
def index_dir(tmp_path):
    rng = np.random.default_rng(0)
    vectors = l2_normalise(rng.normal(size=(200, 16)))
    ids = [f"c{i:03d}" for i in range(200)]
    save_index(*build_index(vectors, "Flat")[:1], ids, str(tmp_path), {})
    return str(tmp_path), vectors, ids


def test_vectors_written_before_schema_1_3_still_read(tmp_path):
    """1.3 made the vectors' elements required (faster to decode); a 1.2 part, nullable elements, reads the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from judgemine.schemas import embeddings_schema, write_table
    from judgemine.transforms.index.faiss_index import read_vectors

    vectors = l2_normalise(np.random.default_rng(2).normal(size=(3, 4))).astype(np.float32)
    table = pa.table({"id": ["a", "b", "c"], "vector": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), 4)})
    old = pa.schema([pa.field("id", pa.string(), nullable=False),
                     pa.field("vector", pa.list_(pa.float32(), 4), nullable=False)],
                    metadata={"judgemine.schema": "embeddings", "judgemine.schema_version": "1.2"})
    pq.write_table(table.cast(old), tmp_path / "old.parquet")
    write_table(table, str(tmp_path / "new.parquet"), embeddings_schema(4))
    assert not pq.read_schema(tmp_path / "new.parquet").field("vector").type.value_field.nullable
    for name in ("old", "new"):
        ids, got = read_vectors([str(tmp_path / f"{name}.parquet")])
        assert ids == ["a", "b", "c"] and np.array_equal(got, vectors)


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
    spec = EmbedderSpec("sentence-transformers", Settings().resolved_embed_model, 4, "cpu")
    handler = EmbedHandler(spec, StageWork())
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


@pytest.mark.parametrize("is_flat,device,cuda,gpus,backend", [
    (True, "auto", False, 0, "faiss-cpu"), (True, "cpu", True, 1, "faiss-cpu"), (True, "auto", True, 1, "faiss-gpu"),
    (True, "auto", True, 0, "torch"), (True, "cuda", True, 0, "torch"), (False, "auto", True, 0, "faiss-cpu"),
    (False, "cuda", True, 2, "faiss-gpu")])
def test_where_the_search_runs(is_flat, device, cuda, gpus, backend):
    """FAISS GPU where the build has it, torch for exact search otherwise, an approximate index on the CPU."""
    from judgemine.transforms.index.faiss_index import search_backend
    assert search_backend(is_flat, device, cuda, gpus) == backend


def _clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    return l2_normalise(centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.slow
def test_training_uses_a_seeded_sample_and_is_reproducible():
    import faiss
    vectors = _clustered(3000)
    one, info = build_index(vectors, "IVF16,Flat", seed=0, train_size=500)
    again, _ = build_index(vectors, "IVF16,Flat", seed=0, train_size=500)
    other, _ = build_index(vectors, "IVF16,Flat", seed=1, train_size=500)
    assert info["trained_on"] == 500 and info["vectors"] == 3000
    assert (faiss.serialize_index(one) == faiss.serialize_index(again)).all()
    assert not np.array_equal(faiss.serialize_index(one), faiss.serialize_index(other))
    assert build_index(vectors, "IVF4,Flat")[1]["trained_on"] == 4 * 256  # the rule of thumb: 256 per list
    assert build_index(vectors, "IVF4,PQ4x4")[1]["trained_on"] == 3000  # PQ: 256 x 256, capped at the pool
    assert build_index(vectors, "Flat")[1]["trained_on"] == 0
    assert build_index(vectors, "IVF4,PQ4x4,Refine(SQ8)")[1]["trained_on"] == 3000  # PQ seen under the refine
    opq = [faiss.serialize_index(build_index(vectors, "OPQ4,IVF16,PQ4x4", seed=2, train_size=1000)[0])
           for _ in range(2)]
    assert (opq[0] == opq[1]).all()  # OPQ's rotation and PQ's codebooks are seeded too


def test_search_parameters_and_auto_choice():
    import faiss

    from judgemine.transforms.index.index_choice import auto_factory, search_parameters
    ivf = faiss.index_factory(32, "IVF256,Flat", faiss.METRIC_INNER_PRODUCT)
    assert search_parameters(ivf, 0, 0, 100) == "nprobe=16" and search_parameters(ivf, 5, 0, 100) == "nprobe=5"
    hnsw = faiss.index_factory(32, "HNSW16", faiss.METRIC_INNER_PRODUCT)
    assert search_parameters(hnsw, 0, 0, 100) == "efSearch=200" and search_parameters(hnsw, 0, 40, 100) == "efSearch=40"
    assert search_parameters(faiss.index_factory(32, "Flat", faiss.METRIC_INNER_PRODUCT), 0, 0, 100) == ""
    refined = faiss.index_factory(32, "IVF256,PQ8,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)
    assert search_parameters(refined, 0, 0, 100) == "nprobe=16,k_factor_rf=4"
    assert auto_factory(10_000)[0] == "Flat"
    assert auto_factory(1_000_000)[0] == "IVF4096,Flat"
    assert auto_factory(50_000_000)[0] == "IVF32768,PQ64,Refine(SQ8)"


@pytest.mark.parametrize("k", [25, 250])
def test_shards_merged_equal_one_index_with_exclusions(tmp_path, k):
    """Three Flat shards searched apart and merged give the unsharded result, exclusions spread over shards;
    at k = 250 every shard (200 vectors) runs short, so the merge also orders padded (null) hits."""
    from judgemine.transforms.index.faiss_index import shard_rows
    from judgemine.transforms.retrieve.search import merge_shards
    vectors = _clustered(600, seed=3)
    ids = [f"c{i:04d}" for i in range(600)]
    save_index(*build_index(vectors, "Flat")[:1], ids, str(tmp_path / "one"), {})
    parts = []
    for s in range(3):
        lo, hi = shard_rows([250, 350], s, 3)
        save_index(*build_index(vectors[lo:hi], "Flat")[:1], ids[lo:hi], str(tmp_path / f"s{s}"), {})
    queries = _clustered(40, seed=4)
    sims = queries @ vectors.T
    excluded = [[ids[j] for j in np.argsort(-sims[i])[:: 7][:6]] for i in range(40)]  # spread over shards
    rows, want = CandidateIndex(str(tmp_path / "one")).search_excluding(queries, excluded, k=k)
    for s in range(3):
        index = CandidateIndex(str(tmp_path / f"s{s}"))
        r, sm = index.search_excluding(queries, excluded, k=k)
        assert (k > 200) == bool((r < 0).any())
        parts.append((s, [f"q{i}" for i in range(40)], index.ids_of(r), np.where(r >= 0, sm, -np.inf).astype(
            np.float32)))
    _, names, got = merge_shards(parts, k)
    flat = names.to_pylist()
    names = [flat[i * k:(i + 1) * k] for i in range(40)]
    assert names == [[ids[j] if j >= 0 else None for j in row] for row in rows]
    assert np.allclose(np.where(rows >= 0, got, 0), want, atol=1e-6)
    assert np.isneginf(got[rows < 0]).all()
    assert not any(set(e) & set(row) for e, row in zip(excluded, names))
