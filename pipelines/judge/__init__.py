"""Stage 5, judge: its pipeline (stage.py) and its settings (settings.py)."""
