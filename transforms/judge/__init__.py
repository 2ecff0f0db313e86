"""Judge: the prompt, the score, the backend interface, its backends, the score cache (docs/SPEC.md section 4)."""
