"""The STARK-style transformer scheduler, trained by imitation of the greedy expert (model.py, train.py)."""
