"""Stage 3, index: its pipeline (stage.py) and its settings (settings.py)."""
