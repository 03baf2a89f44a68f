"""The PPO baseline: the shared PPO loop on the base state with a dense actor over servers (agent.py)."""
