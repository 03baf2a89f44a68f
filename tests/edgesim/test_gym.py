"""The Gymnasium wrappers: Gymnasium 1.x semantics, the fast single env against the batched
simulator, the observation encoding, registration, and the evaluation protocol through the Gym API."""
from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import edgesim  # noqa: F401  (registers the ids)
from edgesim.gym_obs import ObservationEncoder
from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv
from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Simulator

DISABLED = AutoresetMode.DISABLED


def first_valid(obs):
    return obs["action_mask"].argmax(-1)


SERVING = {"profile": "serving", "params": {"arrival_rate": 4.0}}  # light: requests complete within a few decisions


@pytest.mark.parametrize("kw", [{}, {"normalize": False}, {"profile": "contention", "horizon": 30},
                                SERVING | {"horizon": 30}])
def test_single_env_passes_the_gymnasium_checker(default_ds, kw):
    check_env(EdgeMoEEnv(default_ds, **kw), skip_render_check=True)


@pytest.mark.parametrize("normalize", [True, False])
def test_single_env_steps_like_the_batched_simulator(small_root, normalize):
    """Same task, actions and uniforms: the plain-Python single env and a batch-1 Simulator agree on
    every reward component, info value and observation, step by step (invalid servers included)."""
    from edgesim.dataset import load_dataset
    ds = load_dataset(small_root / "multi", ["Region1", "Region2"])  # cross-region hops and switches
    env = EdgeMoEEnv(ds, split="train", normalize=normalize)
    enc = ObservationEncoder(ds, normalize)
    rng = np.random.default_rng(0)
    checked = 0
    for episode in range(25):
        obs, _ = env.reset(seed=episode)
        sim = Simulator(ds, 1, "train", "sequential", 0, autoreset=False, task_subset=[env.episode.task])
        np.testing.assert_array_equal(obs["state"], enc.encode(sim)["state"][0])
        terminated = False
        while not terminated:
            valid = np.flatnonzero(obs["action_mask"])
            action = int(rng.choice(valid)) if rng.random() < 0.7 else int(rng.integers(ds.n_servers))
            u = copy.deepcopy(env.np_random).random(4)  # the draws the env is about to make
            obs, reward, terminated, truncated, info = env.step(action)
            _, rv, done, sim_info = sim.step(torch.tensor([action]), uniforms=torch.tensor(u)[None])
            np.testing.assert_allclose(info["reward_vector"], rv[0].numpy(), rtol=1e-9, atol=1e-12)
            assert reward == pytest.approx(float(rv[0].numpy() @ np.array(EVAL_WEIGHTS)), rel=1e-9, abs=1e-12)
            for key, sim_key in (("latency_ms", "latency"), ("cost", "cost"), ("compute_ms", "compute_ms"),
                                 ("network_ms", "network_ms"), ("queue_ms", "queue_ms")):
                assert info[key] == pytest.approx(float(sim_info[sim_key][0]), rel=1e-9, abs=1e-9), key
            for key in ("server", "fallback", "trap_hit", "switch", "step"):
                assert info[key] == sim_info[key][0].item(), key
            assert terminated == bool(done[0]) and not truncated
            np.testing.assert_array_equal(obs["state"], enc.encode(sim)["state"][0])
            np.testing.assert_array_equal(obs["action_mask"], enc.encode(sim)["action_mask"][0])
            checked += 1
    assert checked >= 100


def test_normalised_state_is_scaled_and_inside_tight_bounds(default_ds):
    env = EdgeMoEVectorEnv(default_ds, 64)
    obs, _ = env.reset(seed=0)
    space = env.single_observation_space
    states = []
    for _ in range(12):
        for i in range(env.num_envs):
            assert space.contains({k: v[i] for k, v in obs.items()})
        states.append(obs["state"])
        obs, *_ = env.step(first_valid(obs))
    states = np.concatenate(states)
    n_types = len(default_ds.type_names)
    assert states.shape[1] == 7 + n_types
    assert np.abs(states[:, 1:5]).max() < 1.2  # positions scaled to the servers' box
    np.testing.assert_array_equal(states[:, 7:].sum(1), 1.0)  # one-hot model type
    high = space["state"].high
    assert high[5] == pytest.approx(max(float(t.tokens.max()) for t in default_ds.tasks.values()) / 2000.0)
    raw = EdgeMoEEnv(default_ds, normalize=False).observation_space["state"]
    assert raw.shape == (8,) and raw.high[5] == n_types - 1


def test_info_keys_leave_the_library_names_free(default_ds):
    env = EdgeMoEEnv(default_ds)
    obs, _ = env.reset(seed=1)
    _, reward, _, _, info = env.step(int(first_valid(obs)))
    assert not {"episode", "done", "final_obs", "final_info"} & set(info)
    assert info["reward_vector"].shape == (3,) and info["reward_vector"].dtype == np.float64
    assert reward == pytest.approx(float(info["reward_vector"] @ np.array(EVAL_WEIGHTS)))
    assert isinstance(info["episode_id"], int) and isinstance(info["fallback"], bool)
    assert isinstance(info["latency_ms"], float) and isinstance(info["task"], int)
    venv = EdgeMoEVectorEnv(default_ds, 4)
    obs, _ = venv.reset(seed=1)
    _, _, _, _, infos = venv.step(first_valid(obs))
    assert not {"episode", "done"} & set(infos)
    assert infos["reward_vector"].shape == (4, 3) and infos["latency_ms"].dtype == np.float64
    assert infos["_latency_ms"].all()


def test_action_masks_match_the_observation(default_ds):
    env = EdgeMoEEnv(default_ds)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        np.testing.assert_array_equal(env.action_masks(), obs["action_mask"].astype(bool))
        obs, *_ = env.step(int(first_valid(obs)))
    venv = EdgeMoEVectorEnv(default_ds, 6)
    obs, _ = venv.reset(seed=0)
    np.testing.assert_array_equal(venv.action_masks(), obs["action_mask"].astype(bool))


def test_single_env_seeding(default_ds):
    env = EdgeMoEEnv(default_ds)

    def tasks(env, seed, n=6):
        """The tasks of a seeded reset and the n - 1 unseeded resets after it."""
        out = []
        for i in range(n):
            env.reset(seed=seed if i == 0 else None)
            out.append(env.episode.task)
        return out

    first = tasks(env, 7)
    assert tasks(env, 7) == first  # a seed replays
    assert len(set(first)) > 1  # reset() without a seed continues with new tasks
    assert tasks(EdgeMoEEnv(default_ds, split="test", order="sequential"), 0, 4) == [0, 1, 2, 3]


def test_vector_env_seeding(default_ds):
    env = EdgeMoEVectorEnv(default_ds, 4)
    a, _ = env.reset(seed=3)
    b, _ = env.reset()  # continues: new tasks
    c, _ = env.reset(seed=3)
    np.testing.assert_array_equal(a["state"], c["state"])
    assert not np.array_equal(a["state"], b["state"])
    d, _ = env.reset(seed=[1, 2, 3, 4])
    e, _ = env.reset(seed=[1, 2, 3, 4])
    np.testing.assert_array_equal(d["state"], e["state"])
    with pytest.raises(ValueError, match="one seed per env"):
        env.reset(seed=[1, 2])


def test_vector_env_same_step_autoreset_in_gymnasium_layout(default_ds):
    env = EdgeMoEVectorEnv(default_ds, 8)
    assert env.autoreset_mode == AutoresetMode.SAME_STEP == env.metadata["autoreset_mode"]
    obs, _ = env.reset(seed=0)
    ended = np.zeros(8, bool)
    while not ended.any():
        obs, reward, terminated, truncated, infos = env.step(first_valid(obs))
        ended = terminated | truncated
    np.testing.assert_array_equal(infos["_final_obs"], ended)
    for i in range(8):
        if ended[i]:
            assert infos["final_obs"][i]["state"][0] == 1.0  # the finished step's observation
            assert obs["state"][i, 0] == 0.0  # already the next episode's first
        else:
            assert infos["final_obs"][i] is None
    np.testing.assert_array_equal(infos["final_info"]["_latency_ms"], ended)
    np.testing.assert_array_equal(infos["_latency_ms"], ~ended)  # the ended rows' top-level info is the reset's


def test_vector_env_disabled_autoreset_waits_for_a_reset_mask(default_ds):
    env = EdgeMoEVectorEnv(default_ds, 4, autoreset_mode=DISABLED)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(first_valid(obs))
    obs, _ = env.reset(options={"reset_mask": np.array([True, False, False, False])})
    assert obs["state"][0, 0] == 0.0 and (obs["state"][1:, 0] > 0).all()  # row 0 restarted, the others went on
    terminated = np.zeros(4, bool)
    while not terminated.any():
        obs, _, terminated, _, infos = env.step(first_valid(obs))
    assert "final_obs" not in infos
    with pytest.raises(RuntimeError, match="reset_mask"):
        env.step(first_valid(obs))
    obs, _ = env.reset(options={"reset_mask": terminated})
    env.step(first_valid(obs))
    with pytest.raises(ValueError, match="NEXT_STEP"):
        EdgeMoEVectorEnv(default_ds, 4, autoreset_mode=AutoresetMode.NEXT_STEP)


def test_record_episode_statistics_single_and_vector(default_ds):
    from gymnasium.wrappers import RecordEpisodeStatistics
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorRecordEpisodeStatistics
    env = RecordEpisodeStatistics(gym.make("EdgeMoE-v0", data=default_ds))
    obs, _ = env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, te, tr, info = env.step(int(first_valid(obs)))
        total, steps, done = total + r, steps + 1, te or tr
    assert info["episode"]["l"] == steps and info["episode"]["r"] == pytest.approx(total, rel=1e-6)
    venv = VectorRecordEpisodeStatistics(gym.make_vec("EdgeMoE-v0", num_envs=4, vectorization_mode="vector_entry_point",
                                                      data=default_ds))
    obs, _ = venv.reset(seed=0)
    returns = np.zeros(4)
    while True:
        obs, r, te, tr, infos = venv.step(first_valid(obs))
        returns += r
        if "episode" in infos:
            break
    np.testing.assert_allclose(infos["episode"]["r"][infos["_episode"]], returns[infos["_episode"]], rtol=1e-6)


def test_contention_episode_is_one_world_over_a_horizon(default_ds):
    env = gym.make("EdgeMoEContention-v0", data=default_ds, horizon=40)
    obs, _ = env.reset(seed=0)
    assert obs["queue"].shape == (default_ds.n_servers,)
    server = int(first_valid(obs))
    episodes, truncated, steps = set(), False, 0
    while not truncated:
        mask = obs["action_mask"].astype(bool)
        obs, _, terminated, truncated, info = env.step(server if mask[server] else int(first_valid(obs)))
        episodes.add(info["episode_id"])
        steps += 1
        assert not terminated
    assert steps == 40 and len(episodes) > 1  # decisions of several workflows in one world
    assert obs["queue"].max() > 0  # the servers picked again and again have queues
    venv = gym.make_vec("EdgeMoEContention-v0", num_envs=3, vectorization_mode="vector_entry_point", data=default_ds,
                        horizon=5)
    obs, _ = venv.reset(seed=0)
    for t in range(5):
        obs, _, terminated, truncated, infos = venv.step(first_valid(obs))
        assert truncated.all() == (t == 4) and not terminated.any()
    assert infos["_final_obs"].all()
    with pytest.raises(ValueError, match="together"):
        EdgeMoEVectorEnv(default_ds, 3, profile="contention", autoreset_mode=DISABLED).reset(
            options={"reset_mask": np.array([True, False, False])})


def test_registration_and_bad_arguments(default_ds):
    assert {"EdgeMoE-v0", "EdgeMoEContention-v0", "EdgeMoEServing-v0"} <= set(gym.registry)
    env = gym.make("EdgeMoE-v0", data=default_ds, normalize=False)
    assert env.observation_space["state"].shape == (8,)
    venv = gym.make_vec("EdgeMoE-v0", num_envs=2, vectorization_mode="vector_entry_point", data=default_ds)
    assert isinstance(venv, EdgeMoEVectorEnv)
    with pytest.raises(ValueError, match="horizon applies"):
        EdgeMoEEnv(default_ds, horizon=10)
    with pytest.raises(ValueError, match="order"):
        EdgeMoEEnv(default_ds, order="shuffled")
    env = EdgeMoEEnv(default_ds)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="server index"):
        env.step(default_ds.n_servers)


def test_evaluate_policy_runs_the_protocol(default_ds, tmp_path):
    """A policy through the Gym observation gets exactly the episodes the same rule gets on the simulator."""
    from schedkit.evaluation import eval_simulator, evaluate
    from schedkit.gym_eval import evaluate_policy
    from schedkit.outputs import OutputExists

    class FirstValid:
        name = "first_valid"

        def act(self, sim, obs):
            return sim.valid_mask().to(torch.int8).argmax(1)

    out = tmp_path / "eval"
    summary = evaluate_policy(lambda o, m: m.argmax(1), data=default_ds, episodes=64, out=out, progress=False)
    direct = evaluate(eval_simulator(default_ds, "test", 64, 0), FirstValid(), 64, progress=False)
    import pandas as pd
    got = pd.read_csv(out / "episodes.csv")
    np.testing.assert_allclose(got["reward"], direct["reward"], rtol=1e-12)
    assert list(got["task_id"]) == list(direct["task_id"])
    assert summary["mean_reward"] == pytest.approx(direct["reward"].mean())
    with pytest.raises(OutputExists):
        evaluate_policy(lambda o, m: m.argmax(1), data=default_ds, episodes=32, out=out, progress=False)
    with pytest.raises(ValueError, match="actions"):
        evaluate_policy(lambda o, m: [0], data=default_ds, episodes=8, progress=False)


@pytest.mark.parametrize("kw", [{}, {"profile": "contention", "horizon": 6}, SERVING | {"horizon": 6}])
def test_vector_env_keeps_to_its_declared_spaces_and_replays_a_seed(default_ds, kw):
    """What Gymnasium's checker asks of a single env, asked of the vector env (neither Gymnasium nor
    SB3 ships a checker for vector envs): observations inside the batched space, random actions from
    the batched action space accepted, float rewards and bool flags of batch shape, a seed replayed."""
    def play(seed):
        env = EdgeMoEVectorEnv(default_ds, 5, **kw)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        trace = [obs["state"]]
        for _ in range(8):
            assert env.observation_space.contains(obs)
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert reward.shape == (5,) and reward.dtype == np.float64
            assert terminated.dtype == np.bool_ and truncated.shape == (5,)
            trace.append(obs["state"])
        return np.stack(trace)

    np.testing.assert_array_equal(play(4), play(4))


# ----------------------------------------------------------------------------- serving: delayed outcomes

def play_serving(env, seed, steps, actions=None):
    """Reset `env` (single) with `seed` and route `steps` decisions (the first valid server, or `actions`);
    every step's (observation, reward, terminated, truncated, info)."""
    obs, _ = env.reset(seed=seed)
    out = []
    for t in range(steps):
        obs, *rest = env.step(int(first_valid(obs)) if actions is None else actions[t])
        out.append((obs, *rest))
    return out


def test_serving_step_rewards_the_requests_that_completed_during_it(default_ds):
    """One env is one world: each step routes the world's pending decision and earns what the world's requests
    that completed meanwhile earned (delayed credit); info["completed"] lists them, each one routed before."""
    env = gym.make("EdgeMoEServing-v0", data=default_ds, params=SERVING["params"], horizon=120)
    routed, completed = set(), 0
    for t, (obs, reward, terminated, truncated, info) in enumerate(play_serving(env, 3, 120)):
        routed.add((info["episode_id"], info["step"]))
        done = info["completed"]
        assert isinstance(reward, float) and math.isfinite(reward) and not terminated and truncated == (t == 119)
        assert reward == pytest.approx(float(done["reward"].sum()), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(info["reward_vector"], done["reward_vector"].sum(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(done["reward"], done["reward_vector"] @ np.array(EVAL_WEIGHTS), rtol=1e-12)
        assert {(e, k) for e, k in zip(done["episode_id"].tolist(), done["step"].tolist())} <= routed
        assert (done["ttft_ms"] > 0).all() and (done["latency_ms"] >= done["ttft_ms"]).all()
        assert (done["tpot_ms"] >= 0).all() and np.isfinite(done["reward"]).all()
        completed += len(done["reward"])
    assert completed >= 20 and len(routed) == 120
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


def test_serving_vector_env_credits_each_world_what_the_simulator_completed(default_ds):
    """Row i's reward is the weighted sum of the simulator's completed requests of world i (same seed, same
    actions), and its info["completed"] holds exactly those requests."""
    from edgesim.registry import make_simulator
    env = EdgeMoEVectorEnv(default_ds, 3, **SERVING, horizon=40)
    sim = make_simulator(default_ds, 3, "train", "random", 5, profile="serving", params=SERVING["params"])
    obs, _ = env.reset(seed=5)
    sim.reset()
    completed = 0
    for _ in range(39):
        actions = first_valid(obs)
        obs, rewards, _, truncated, infos = env.step(actions)
        _, r, _, info = sim.step(torch.as_tensor(actions))
        world = info["world"].numpy()
        weighted = r.numpy() @ np.array(EVAL_WEIGHTS)
        np.testing.assert_allclose(rewards, np.bincount(world, weighted, 3), rtol=1e-12, atol=1e-12)
        for i in range(3):
            done = infos["completed"][i]
            np.testing.assert_array_equal(done["episode_id"], info["episode"].numpy()[world == i])
            np.testing.assert_array_equal(done["ttft_ms"], info["ttft_ms"].numpy()[world == i])
        completed += len(world)
        assert not truncated.any()
    assert completed >= 20


def test_serving_envs_replay_a_seed(default_ds):
    def trace(seed):
        steps = play_serving(EdgeMoEEnv(default_ds, **SERVING, horizon=50), seed, 50)
        return [(r, info["completed"]["episode_id"].tolist(), info["completed"]["latency_ms"].tolist(),
                 obs["queue"].tolist()) for obs, r, _, _, info in steps]

    first = trace(11)
    assert trace(11) == first
    assert trace(12) != first
    assert sum(len(step[1]) for step in first) > 0

    def vector(seed):
        env = EdgeMoEVectorEnv(default_ds, 2, **SERVING, horizon=20)
        obs, _ = env.reset(seed=seed)
        return np.stack([env.step(first_valid(obs))[1] for _ in range(15)])

    np.testing.assert_array_equal(vector(4), vector(4))


def test_serving_observations_never_show_hidden_output_lengths(default_ds, tmp_path):
    """Two worlds that differ only in their requests' output lengths look the same to a router until a request
    completes: the observation shows prompts' effects and live state, never the hidden lengths."""
    rng = np.random.default_rng(0)
    prompts = rng.integers(50, 2000, 64)
    envs = []
    for name, scale in (("short", 1), ("long", 8)):
        path = tmp_path / f"{name}.csv"
        path.write_text("ContextTokens,GeneratedTokens\n" + "".join(f"{p},{20 * scale}\n" for p in prompts))
        envs.append(EdgeMoEEnv(default_ds, profile="serving", params={"arrival_rate": 4.0, "token_trace": str(path)},
                               horizon=200))
    obs = [env.reset(seed=2)[0] for env in envs]
    assert set(obs[0]) == {"state", "action_mask", "queue"}
    same = 0
    while True:
        for key in obs[0]:
            np.testing.assert_array_equal(obs[0][key], obs[1][key], err_msg=key)
        action = int(first_valid(obs[0]))
        steps = [env.step(action) for env in envs]
        obs = [step[0] for step in steps]
        if any(len(step[4]["completed"]["reward"]) for step in steps):
            break
        same += 1
    assert same >= 3  # several decisions (and arrivals at busy servers) before the first completion
