"""The non-learned schedulers (policies.py), their evaluation (inference.py) and the tuning of
their latency weight (tune.py)."""
