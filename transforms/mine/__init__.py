"""Mine: the mining rule and the shard writer (docs/SPEC.md section 5)."""
