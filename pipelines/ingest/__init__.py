"""Stage 1, ingest: its pipeline (stage.py), its settings (settings.py) and its gate (reject_gate.py)."""
