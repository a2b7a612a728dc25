"""Tasks: one folder per task (scene additions, observation layout, reward, success)."""
