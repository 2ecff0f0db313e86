"""Stage 6, mine: its pipeline (stage.py); its settings are the mining rule (transforms/mine/rule.py)."""
