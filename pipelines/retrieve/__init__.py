"""Stage 4, retrieve: its pipeline (stage.py) and its settings (settings.py)."""
