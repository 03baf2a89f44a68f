"""Every bad input to the Python API is refused at the door with a ValueError naming the argument and
what was expected: the Gym envs (registered ids, vector env, SB3 VecEnv), the simulator, its
profiles and parameters, the dataset loader and arrival traces."""
from __future__ import annotations

import math
import os
import threading
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from tiny import write_tiny

import edgesim  # noqa: F401 - registers the ids
from edgesim.contention import Contention, ContentionError, load_arrival_gaps
from edgesim.dataset import DatasetError, load_dataset
from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv, ResetNeeded
from edgesim.inputs import MAX_SEED, InputError
from edgesim.paper import ProfileError
from edgesim.registry import get_profile, make_simulator
from edgesim.simulator import Simulator

BIG = 10**12
pytestmark = pytest.mark.filterwarnings("ignore:skipped 1 task")  # the tiny region's one-step task


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    write_tiny(folder / "Tiny")
    return folder


@pytest.fixture(scope="module")
def ds(root):
    return load_dataset(root, "Tiny")


def refused(call, *words: str, kind: type[Exception] = InputError) -> str:
    """`call()` raises `kind` (an InputError, so a ValueError) whose message holds every word."""
    with pytest.raises(kind) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def make(ds, env_id="EdgeMoE-v0", **kw):
    return gym.make(env_id, data=ds, **kw)


# ----------------------------------------------------------------------------- the single env

@pytest.mark.parametrize("action", [3.7, 2.0, np.float64(1.0), "3", True, np.bool_(True), -1, 4, None,
                                    np.array([1]), np.array(1.0)])
@pytest.mark.parametrize("env_id", ["EdgeMoE-v0", "EdgeMoEContention-v0", "EdgeMoEServing-v0"])
def test_step_refuses_anything_but_a_server_index(ds, env_id, action):
    env = make(ds, env_id)
    env.reset(seed=0)
    refused(lambda: env.step(action), "action", "server index", "[0, 4)")


@pytest.mark.parametrize("action", [2, np.int64(2), np.array(2), np.int8(0)])
def test_step_takes_what_discrete_contains(ds, action):
    env = make(ds)
    env.reset(seed=0)
    assert env.action_space.contains(action)
    assert env.step(action)[4]["server"] in range(4)


@pytest.mark.parametrize("weights, words", [
    ((math.nan, 0.5, 0.5), ["weights[0]", "finite"]),
    ((-0.2, 0.6, 0.6), ["weights[0]", ">= 0"]),
    ((0.5, 0.5), ["weights", "3 numbers"]),
    ((0.25, 0.25, 0.25, 0.25), ["weights", "3 numbers"]),
    ((1.0, 1.0, 1.0), ["weights", "sum to 1", "sum 3"]),
    ("abc", ["weights", "3 numbers"]),
    (("0.5", 0.25, 0.25), ["weights[0]", "finite number"]),
])
@pytest.mark.parametrize("vector", [False, True])
def test_reward_weights_are_three_non_negative_numbers_summing_to_one(ds, weights, words, vector):
    if vector:
        refused(lambda: EdgeMoEVectorEnv(ds, 2, weights=weights), *words)
    else:
        refused(lambda: make(ds, weights=weights), *words)


def test_weights_that_sum_to_one_in_float32_are_taken(ds):
    env = EdgeMoEEnv(ds, weights=np.array([0.45, 0.40, 0.15], np.float32))
    assert math.isclose(sum(env.weights), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize("kw, words, kind", [
    ({"region": "../Tiny"}, ["region", "plain name", "'../Tiny'"], DatasetError),
    ({"region": "/etc"}, ["region", "plain name"], DatasetError),
    ({"region": "Nope"}, ["region folder not found", "regions under", "Tiny"], DatasetError),
    ({"region": 5}, ["region", "a region name or a list"], DatasetError),
    ({"region": []}, ["no region given"], DatasetError),
    ({"split": "valid"}, ["split", "'test', 'train'", "'valid'"], InputError),
    ({"split": ["train"]}, ["split", "expected one of"], InputError),
    ({"order": "shuffled"}, ["order", "'random', 'sequential'"], InputError),
    ({"profile": "crowded"}, ["profile 'crowded' is not implemented", "paper"], ProfileError),
    ({"profile": ["paper"]}, ["profile ['paper'] is not implemented"], ProfileError),
    ({"normalize": "no"}, ["normalize", "True or False"], InputError),
    ({"render_mode": "human"}, ["render_mode", "'ansi'", "'human'"], InputError),
    ({"params": {"arrival_rate": 3}}, ["params", "'paper' profile takes no parameters"], ProfileError),
    ({"horizon": 10}, ["horizon applies to a profile whose Gym episodes are worlds", "'paper'"], InputError),
])
def test_bad_constructor_arguments_name_the_argument(root, kw, words, kind):
    refused(lambda: gym.make("EdgeMoE-v0", data=root, **({"region": "Tiny"} | kw)), *words, kind=kind)


def test_data_root_must_be_a_folder(root, tmp_path):
    refused(lambda: gym.make("EdgeMoE-v0", data=root / "Tiny" / "servers.csv", region="Tiny"),
            "data root is not a folder", kind=DatasetError)
    refused(lambda: gym.make("EdgeMoE-v0", data=tmp_path / "absent", region="Tiny"), "data root not found",
            kind=DatasetError)
    refused(lambda: gym.make("EdgeMoE-v0", data=5), "data", "a Dataset or a data root folder")


@pytest.mark.parametrize("kw, words, kind", [
    ({"horizon": 2.5}, ["horizon", "integer", "2.5"], InputError),
    ({"horizon": 0}, ["horizon", ">= 1"], InputError),
    ({"params": {"worlds": BIG}}, ["contention.worlds", "<= 65536"], ProfileError),
    ({"params": {"max_in_flight": BIG}}, ["contention.max_in_flight"], ProfileError),
    ({"params": {"arrival_rate": math.nan}}, ["contention.arrival_rate", "finite"], ProfileError),
    ({"params": {"arival_rate": 1.0}}, ["unknown contention key"], ProfileError),
    ({"params": 5}, ["params", "None, a dict or a Contention", "got 5"], ProfileError),
])
def test_bad_contention_env_arguments_name_the_argument(ds, kw, words, kind):
    refused(lambda: make(ds, "EdgeMoEContention-v0", **kw), *words, kind=kind)


@pytest.mark.parametrize("kw, words, kind", [
    ({"horizon": 2.5}, ["horizon", "integer", "2.5"], InputError),
    ({"horizon": 0}, ["horizon", ">= 1"], InputError),
    ({"params": {"load": 2}}, ["serving.load", "<= 1.2"], ProfileError),
    ({"params": {"max_batch": 0}}, ["serving.max_batch"], ProfileError),
    ({"params": {"token_trace": "no_such.csv"}}, ["serving.token_trace", "no_such.csv"], ProfileError),
    ({"params": {"lod": 0.5}}, ["unknown serving key"], ProfileError),
    ({"params": 5}, ["params", "None, a dict or a Serving", "got 5"], ProfileError),
    ({"weights": (1.0, 1.0, 1.0)}, ["weights", "sum to 1"], InputError),
    ({"num_envs": 0}, ["num_envs", ">= 1"], InputError),
])
def test_bad_serving_env_arguments_name_the_argument(ds, kw, words, kind):
    if "num_envs" in kw:
        refused(lambda: EdgeMoEVectorEnv(ds, profile="serving", **kw), *words, kind=kind)
        return
    refused(lambda: make(ds, "EdgeMoEServing-v0", **kw), *words, kind=kind)
    refused(lambda: EdgeMoEVectorEnv(ds, 2, profile="serving", **kw), *words, kind=kind)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, 2.5, "3", True])
def test_reset_seed_is_an_integer_in_range(ds, seed):
    refused(lambda: make(ds).reset(seed=seed), "seed", "integer", str(MAX_SEED))
    refused(lambda: EdgeMoEVectorEnv(ds, 2).reset(seed=seed), "seed", "integer")
    refused(lambda: EdgeMoEVectorEnv(ds, 2).reset(seed=[0, seed]), "seed[1]", "integer")


def test_step_before_reset_is_gymnasiums_reset_needed(ds):
    for env in (EdgeMoEEnv(ds), EdgeMoEEnv(ds, profile="contention"), EdgeMoEEnv(ds, profile="serving")):
        for call in (lambda: env.step(0), env.action_masks):
            with pytest.raises(gym.error.ResetNeeded, match=r"call reset\(\)"):
                call()
    venv = EdgeMoEVectorEnv(ds, 2)
    for call in (lambda: venv.step(np.zeros(2, np.int64)), venv.action_masks):
        with pytest.raises(ResetNeeded, match=r"call reset\(\) before step"):
            call()
    venv.reset(seed=0)
    assert venv.step(np.zeros(2, np.int64))[1].shape == (2,)


# ----------------------------------------------------------------------------- render

def test_render_ansi_describes_the_state_and_none_warns(ds):
    env = make(ds, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and text.startswith("task t") and "step 1/" in text and "needs" in text
    env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    assert "last step: server T_" in env.render()
    quiet = EdgeMoEEnv(ds)
    quiet.reset(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert quiet.render() is None
    assert any("render_mode" in str(w.message) for w in caught)
    with pytest.raises(ResetNeeded):
        EdgeMoEEnv(ds, render_mode="ansi").render()


def test_render_under_contention_and_on_the_vector_env(ds):
    env = make(ds, "EdgeMoEContention-v0", render_mode="ansi")
    env.reset(seed=0)
    assert "clock" in env.render()
    env = make(ds, "EdgeMoEServing-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    assert "clock" in env.render() and "requests completed, reward" in env.render()
    venv = EdgeMoEVectorEnv(ds, 3, render_mode="ansi")
    venv.reset(seed=0)
    lines = venv.render()
    assert isinstance(lines, tuple) and len(lines) == 3 and all(line.startswith("task t") for line in lines)
    assert venv.metadata["render_modes"] == ["ansi"]
    refused(lambda: EdgeMoEVectorEnv(ds, 2, render_mode="rgb_array"), "render_mode")


@pytest.mark.filterwarnings("ignore:.*not having a spec")
def test_the_gymnasium_checker_passes_with_its_render_check(ds):
    check_env(make(ds, render_mode="ansi").unwrapped)  # with a spec: every render mode is tried
    check_env(EdgeMoEEnv(ds), skip_render_check=False)


# ----------------------------------------------------------------------------- vector env and SB3

@pytest.mark.parametrize("actions, words", [
    (np.array([1.0, 2.0, 0.0]), ["float64", "integer array"]),
    (np.array([1.5, 2.0, 0.0], np.float32), ["float32"]),
    (np.array([0, 1]), ["shape (3,)", "shape (2,)"]),
    (np.array([[0, 1, 2]]), ["shape (3,)", "shape (1, 3)"]),
    (np.array([True, False, True]), ["bool"]),
    (np.array([0, 1, 4]), ["server indices in [0, 4)", "max 4"]),
    ([0, -1, 2], ["server indices in [0, 4)", "min -1"]),
    ("012", ["integer array"]),
    (1, ["shape ()"]),
    (None, ["integer array"]),
])
def test_vector_env_refuses_actions_of_another_dtype_or_shape(ds, actions, words):
    venv = EdgeMoEVectorEnv(ds, 3)
    venv.reset(seed=0)
    refused(lambda: venv.step(actions), "actions", *words)
    assert venv.step([0, 1, 2])[1].shape == (3,)  # a refused step changed nothing


@pytest.mark.parametrize("kw, words", [
    ({"num_envs": 0}, ["num_envs", ">= 1"]),
    ({"num_envs": 2.0}, ["num_envs", "integer", "2.0"]),
    ({"num_envs": BIG}, ["num_envs", "<= 65536"]),
    ({"num_envs": 2, "autoreset_mode": "sometimes"}, ["autoreset_mode", "'SameStep'"]),
    ({"num_envs": 2, "device": "gpu9"}, ["device", "'gpu9'"]),
])
def test_vector_env_constructor_arguments(ds, kw, words):
    refused(lambda: gym.make_vec("EdgeMoE-v0", vectorization_mode="vector_entry_point", data=ds, **kw), *words)


def test_single_env_reset_options_and_empty_data(ds):
    refused(lambda: make(ds).reset(options=[1]), "options", "dict")
    refused(lambda: gym.make("EdgeMoE-v0", data=""), "data", "a Dataset or a data root folder")


def test_vector_env_reset_options_and_mixed_seed_lists(ds):
    venv = EdgeMoEVectorEnv(ds, 2)
    refused(lambda: venv.reset(options=3), "options", "dict")
    refused(lambda: venv.reset(seed=[1, 2, 3]), "seed", "one seed per env")
    obs, _ = venv.reset(seed=[1, None])  # a None among the seeds: a fresh seed for the batch
    assert obs["state"].shape[0] == 2


def test_sb3_vec_env_refuses_bad_actions_and_stepping_before_reset(ds):
    pytest.importorskip("stable_baselines3")  # an optional extra (requirements-rl-libs.txt)
    from edgesim.sb3_vec_env import EdgeMoESB3VecEnv
    refused(lambda: EdgeMoESB3VecEnv(EdgeMoEEnv(ds)), "env", "EdgeMoEVectorEnv", "DummyVecEnv")
    venv = EdgeMoESB3VecEnv(EdgeMoEVectorEnv(ds, 2))
    with pytest.raises(ResetNeeded):
        venv.step(np.zeros(2, np.int64))
    venv.seed(MAX_SEED)  # SB3 gives env i the seed + i: the second is out of range
    refused(venv.reset, "seed[1]", str(MAX_SEED))
    venv.seed(3)
    venv.reset()
    refused(lambda: venv.step(np.array([0.5, 1.0])), "actions", "float64")
    with pytest.warns(UserWarning, match="render_mode"):
        assert venv.render() is None


# ----------------------------------------------------------------------------- simulator and profiles

@pytest.mark.parametrize("kw, words", [
    ({"batch_size": 0}, ["batch_size", ">= 1"]),
    ({"batch_size": 2.5}, ["batch_size", "integer"]),
    ({"batch_size": BIG}, ["batch_size", "<= 65536"]),
    ({"split": "valid"}, ["split", "'test', 'train'"]),
    ({"split": ["train"]}, ["split"]),
    ({"order": "shuffled"}, ["order"]),
    ({"seed": -1}, ["seed", ">= 0"]),
    ({"seed": MAX_SEED + 1}, ["seed", str(MAX_SEED)]),
    ({"seed": 1.5}, ["seed", "integer"]),
    ({"seed": None}, ["seed", "integer"]),
    ({"device": "gpu"}, ["device", "'gpu'"]),
])
@pytest.mark.parametrize("profile", ["paper", "contention"])
def test_simulator_arguments(ds, kw, words, profile):
    refused(lambda: make_simulator(ds, **({"batch_size": 2} | kw), profile=profile), *words)
    if profile == "paper":
        refused(lambda: Simulator(ds, **({"batch_size": 2} | kw)), *words)


@pytest.mark.parametrize("subset", [[], [0.0, 1.0], ["0"], [0, 99], [-1], [[0, 1]], [None]])
def test_task_subsets_are_integer_indices_into_the_split(ds, subset):
    refused(lambda: Simulator(ds, 2, task_subset=subset), "task_subset", "integer indices into the 2 train tasks")


def test_simulator_dtype_is_a_float_type(ds):
    refused(lambda: Simulator(ds, 2, dtype=torch.int64), "dtype", "torch.float64")
    assert Simulator(ds, 2, dtype=torch.float32, task_subset=np.array([1, 0])).tasks.k == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_without_cuda_is_named(ds):
    refused(lambda: Simulator(ds, 2, device="cuda"), "device", "CUDA is not available")


def test_simulator_takes_a_dataset_and_integer_actions(ds):
    refused(lambda: Simulator("data1", 2), "dataset", "load_dataset")
    sim = Simulator(ds, 2)
    refused(lambda: sim.step(torch.tensor([0.9, 1.2])), "actions", "integer", "float32")
    refused(lambda: sim.step(torch.tensor([True, False])), "actions", "torch.bool")


@pytest.mark.parametrize("name", ["crowded", "", None, ["paper"], 3])
def test_unknown_profiles_list_the_registered_ones(name):
    refused(lambda: get_profile(name), "is not implemented", "available", "'paper'", kind=ProfileError)


@pytest.mark.parametrize("params, words", [
    ({"worlds": 0}, ["contention.worlds"]),
    ({"arival_rate": 2}, ["unknown contention key"]),
    (Contention, ["params", "None, a dict or a Contention"]),
    ([1, 2], ["params"]),
])
def test_make_simulator_checks_the_parameters_against_the_profile(ds, params, words):
    refused(lambda: make_simulator(ds, 2, profile="contention", params=params), *words, kind=ProfileError)


def test_contention_slots_beyond_memory_are_refused_before_allocating(ds):
    refused(lambda: make_simulator(ds, 65536, profile="contention", params=Contention(max_in_flight=1024)),
            "batch_size x contention.max_in_flight", kind=ContentionError)
    assert make_simulator(ds, 2, profile="contention", params={"worlds": 2}).contention.worlds == 2


# ----------------------------------------------------------------------------- Contention

@pytest.mark.parametrize("key, value", [
    ("arrival_rate", 0), ("arrival_rate", -1.0), ("arrival_rate", math.nan), ("arrival_rate", math.inf),
    ("arrival_rate", 1e300), ("arrival_rate", "8"), ("arrival_rate", True),
    ("worlds", 0), ("worlds", 2.5), ("worlds", BIG), ("worlds", "8"),
    ("max_in_flight", 0), ("max_in_flight", BIG), ("max_in_flight", 1.0),
    ("trap_loss", 1.0), ("trap_loss", -0.1), ("trap_loss", math.nan),
    ("trap_max_attempts", 0), ("trap_max_attempts", BIG), ("trap_max_attempts", "3"),
    ("trap_surcharge_scale", -1.0), ("trap_surcharge_scale", math.inf), ("trap_surcharge_scale", 1e300),
    ("warmup", -1), ("warmup", 1.5), ("warmup", BIG),
    ("arrival_trace", 5), ("arrival_trace", ""),
])
def test_contention_checks_every_field_however_it_is_made(key, value):
    refused(lambda: Contention(**{key: value}), f"contention.{key}: expected", kind=ContentionError)
    refused(lambda: Contention.from_dict({key: value}), f"contention.{key}: expected", kind=ContentionError)


def test_contention_worlds_times_slots_is_bounded():
    refused(lambda: Contention(worlds=65536, max_in_flight=1 << 10), "contention.worlds x contention.max_in_flight",
            kind=ContentionError)
    assert Contention(worlds=3, max_in_flight=6, arrival_rate=np.float32(8.0)).worlds == 3
    refused(lambda: Contention.from_dict([("worlds", 3)]), "contention", "mapping", kind=ContentionError)


# ----------------------------------------------------------------------------- load_dataset

@pytest.mark.parametrize("region", ["../Tiny", "Tiny/../Tiny", "/tmp", ".hidden", "", "Ti ny", ["Tiny", "../x"]])
def test_region_names_are_names_not_paths(root, region):
    refused(lambda: load_dataset(root, region), "region", "plain name", kind=DatasetError)


def test_missing_regions_list_those_available_and_duplicates_are_named(root):
    refused(lambda: load_dataset(root, "Nope"), "region folder not found", "regions under", "Tiny",
            kind=DatasetError)
    refused(lambda: load_dataset(root, ["Tiny", "Tiny"]), "'Tiny' given twice", kind=DatasetError)
    refused(lambda: load_dataset(None, "Tiny"), "data root", "folder path", kind=DatasetError)


# ----------------------------------------------------------------------------- arrival traces

def test_a_fifo_or_device_as_trace_is_refused_before_opening(tmp_path):
    fifo = tmp_path / "trace.csv"
    os.mkfifo(fifo)
    errors: list[Exception] = []

    def load() -> None:
        try:
            load_arrival_gaps(fifo)
        except Exception as e:  # noqa: BLE001 - checked below
            errors.append(e)

    worker = threading.Thread(target=load, daemon=True)  # a regression hangs the thread, not the suite
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        with open(fifo, "w"):  # unblock the reader so the thread ends
            pass
        pytest.fail("load_arrival_gaps opened a FIFO")
    assert isinstance(errors[0], ContentionError) and "not a regular file" in str(errors[0])
    refused(lambda: load_arrival_gaps("/dev/zero"), "/dev/zero", "not a regular file", kind=ContentionError)
    refused(lambda: load_arrival_gaps(tmp_path), "arrival trace is a folder", kind=ContentionError)
    refused(lambda: Contention.from_dict({"arrival_trace": str(fifo)}), "not a regular file", kind=ContentionError)


@pytest.mark.parametrize("text, words", [
    ("Timestamp\n1e308\n-1e308\n", ["line 2", "seconds, >= 0"]),
    ("Timestamp\n0\n1\n1e308\n", ["line 4", "<= 1e+12"]),
    ("Timestamp\n-5\n-3\n-1\n", ["line 2", ">= 0", "-5"]),
    ("Timestamp\n1\nnan\n2\n", ["line 3", "nan"]),
    ("Timestamp\n1\ninf\n2\n", ["line 3"]),
    ("Timestamp\n0\n0\n0\n0\n5\n", ["only 2 distinct timestamps among 5", "burst"]),
    ("Timestamp\n3\n3\n3\n", ["all timestamps are equal"]),
    ("Timestamp\n" + "0\n" * 200 + "5e-324\n1e-323\n", ["too small to resolve"]),
    ("Timestamp\nTrue\nFalse\nTrue\n", ["line 2", "expected a timestamp"]),
    ("TIMESTAMP\n2023-11-16 18:15:46\nyesterday\n", ["line 3", "yesterday"]),
])
def test_bad_traces_are_refused_with_file_and_line(tmp_path, text, words):
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    refused(lambda: load_arrival_gaps(trace), str(trace), *words, kind=ContentionError)


def test_good_traces_still_load(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("Timestamp\n0\n1\n")
    assert load_arrival_gaps(trace).tolist() == [1.0]  # two stamps: one gap, regular arrivals
    trace.write_text("Timestamp\n0\n0\n1\n3\n")
    gaps = load_arrival_gaps(trace)
    assert np.isfinite(gaps).all() and math.isclose(gaps.mean(), 1.0)
