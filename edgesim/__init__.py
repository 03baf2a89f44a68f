"""Edge-cloud MoE scheduling simulator (see env.py for the public face)."""
