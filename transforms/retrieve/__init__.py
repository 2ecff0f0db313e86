"""Index and retrieve: FAISS (or torch) exclusion-aware top-K search (docs/SPEC.md section 3)."""
