"""The retrieve stage: exclusion-aware top-K search of the index stage's shards (FAISS, or torch for a flat
index on a GPU), merged into each query's global top-K (docs/SPEC.md section 3)."""
