"""Edge-cloud MoE scheduling simulator (see env.py for the public face).

Importing it registers the Gymnasium ids, one per simulator profile: `gym.make("EdgeMoE-v0", ...)`.
"""
from .gym_wrappers import register_envs

register_envs()
