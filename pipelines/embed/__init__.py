"""Stage 2, embed: its pipeline (stage.py) and its settings (settings.py)."""
