"""The rules. Plain Python: nothing here imports Flask."""
