"""The index stage: FAISS index shards over the candidate vectors, which index type for which pool, and the
index's files on disk that the retrieve stage searches (docs/SPEC.md section 3)."""
