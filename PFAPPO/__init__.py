"""The PF-PPO baseline: PPO with per-server inputs and a proportional-fairness term in the reward (agent.py)."""
