"""TopoFreeRL: PPO with spatiotemporal state, an SE-gated per-server actor, a telemetry prior and
DWA (agent.py, model.py)."""
