"""Ingest: files to typed records, the candidate pool and the rejects (docs/SPEC.md section 1)."""
