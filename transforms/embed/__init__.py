"""Embed: the embedder interface, its backends, and the DoFns and ModelHandler around them (docs/SPEC.md section 2)."""
