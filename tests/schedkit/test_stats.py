"""schedkit.stats: t-intervals over training runs, evaluation seeds and task clusters, paired differences
on shared tasks and the probability of improvement, against known distributions; their coverage in the
study's shape."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from schedkit.stats import (
    ci_unit,
    hierarchical_bootstrap_ci,
    hierarchical_bootstrap_means,
    hierarchical_bootstrap_percentile_ci,
    paired_bootstrap_ci,
    probability_of_improvement,
    runs_array,
    stratified_bootstrap_ci,
    t_quantile,
    task_clusters,
)


def seeds_with_spread(n_runs: int, n: int, between: float, within: float = 1.0, seed: int = 0) -> np.ndarray:
    """(R, 1, n): each run has its own offset (sd `between`) plus episode noise (sd `within`)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, between, (n_runs, 1, 1)) + rng.normal(0, within, (n_runs, 1, n))


def test_between_seed_spread_gives_a_wide_ci_even_with_many_episodes():
    x = seeds_with_spread(10, 2000, between=1.0)
    _, lo, hi = hierarchical_bootstrap_ci(x, n_boot=1000)
    # the mean of 10 seeds with sd 1 has sd ~0.32: a 95% interval ~1.2 wide, not ~0.03 (episodes only)
    assert hi - lo > 0.6
    _, olo, ohi = stratified_bootstrap_ci(list(x[:, 0]), n_boot=1000)  # the old, episodes-only interval
    assert ohi - olo < 0.05
    assert ci_unit(10) == "runs" and ci_unit(1, 5) == "eval seeds, tasks" and ci_unit(1) == "tasks"


def test_no_between_seed_spread_is_close_to_the_episode_interval():
    """Two-stage resampling counts episode noise twice (in the run means and again within runs), so with no
    between-seed spread it is conservative: about sqrt(2) times the 2 * 1.96 se of an episode interval."""
    x = seeds_with_spread(5, 400, between=0.0)
    _, lo, hi = hierarchical_bootstrap_ci(x, n_boot=2000)
    se = x.std() / np.sqrt(x.size)
    assert 3.5 * se < hi - lo < 8.0 * se


def test_one_run_is_an_interval_over_tasks():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (1, 1, 1000))
    mean, lo, hi = hierarchical_bootstrap_ci(x, n_boot=2000)
    se = 2.0 / np.sqrt(1000)
    assert mean == pytest.approx(x.mean()) and lo < mean < hi and (hi - lo) == pytest.approx(3.92 * se, rel=0.15)


def test_coverage_over_repeated_experiments():
    """Runs with between-seed spread (which dominates): the interval covers the true mean about 95% of the time."""
    covered = 0
    for trial in range(200):
        x = seeds_with_spread(20, 50, between=1.0, seed=trial)
        _, lo, hi = hierarchical_bootstrap_ci(x, n_boot=400, seed=trial)
        covered += lo <= 0.0 <= hi
    assert covered >= 186


def test_t_quantile_matches_the_tables():
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-4)
    assert t_quantile(0.975, 1e9) == pytest.approx(1.95996, abs=1e-5)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0.975, 0.5)


# The study's shape: R training runs, 5 eval seeds, 200 tasks x PASSES passes (episode i is task i % 200 in
# every run and seed). Variance components from the audited evaluation: a task-cluster SE of about 0.006 on
# one seed (task sd 0.064, episode sd 0.16), training runs with sd 0.006 (comparable to it), eval-seed
# effects shared by every run and scheduler, a run x seed interaction, and episode draws shared by every
# scheduler under common random numbers.
TASKS, PASSES, EVAL_SEEDS = 200, 10, 5
CLUSTERS = np.tile(np.arange(TASKS), PASSES)


def study_like(rng, n_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n_runs, 5, 2000) with mean 0.5 and y (1, 5, 2000), a heuristic on the same tasks and draws, with
    mean 0.49: the true paired difference is 0.01."""
    n = TASKS * PASSES
    task = rng.normal(0, 0.064, TASKS)[CLUSTERS]
    seed_effect = rng.normal(0, 0.003, (1, EVAL_SEEDS, 1))
    draws = rng.normal(0, 0.1, (1, EVAL_SEEDS, n))
    x = (0.5 + rng.normal(0, 0.006, (n_runs, 1, 1)) + rng.normal(0, 0.002, (n_runs, EVAL_SEEDS, 1))
         + task + seed_effect + draws + rng.normal(0, 0.12, (n_runs, EVAL_SEEDS, n)))
    y = (0.49 + 0.9 * task + rng.normal(0, 0.02, TASKS)[CLUSTERS] + seed_effect + rng.normal(0, 0.001, (1, EVAL_SEEDS, 1))
         + draws + rng.normal(0, 0.12, (1, EVAL_SEEDS, n)))
    return x, y


@pytest.mark.parametrize("n_runs", [3, 5])
def test_coverage_in_the_study_shape(n_runs):
    """The nominal 95% interval covers the true mean and the true paired difference >= 93% of the time with
    3 or 5 runs (a percentile bootstrap over runs covers about 76% / 84%; ignoring the task clusters about 88% / 84%)."""
    trials = 300
    single = paired = 0
    for trial in range(trials):
        x, y = study_like(np.random.default_rng(1000 * n_runs + trial), n_runs)
        _, lo, hi = hierarchical_bootstrap_ci(x, n_boot=400, seed=trial, clusters=CLUSTERS)
        single += lo <= 0.5 <= hi
        _, lo, hi = paired_bootstrap_ci(x, y, n_boot=400, seed=trial, clusters=CLUSTERS)
        paired += lo <= 0.01 <= hi
    assert single / trials >= 0.93 and paired / trials >= 0.93


def test_the_passes_over_one_task_are_one_unit():
    """Ten passes over the same 200 tasks carry the information of one pass: the interval is as wide as one
    pass's, not sqrt(10) times narrower as if the 2000 episodes were independent."""
    rng = np.random.default_rng(8)
    task = rng.normal(0, 1.0, TASKS)
    one = hierarchical_bootstrap_ci(task[None, None] + rng.normal(0, 0.01, (1, 1, TASKS)), n_boot=2000)
    ten = hierarchical_bootstrap_ci(task[CLUSTERS][None, None] + rng.normal(0, 0.01, (1, 1, TASKS * PASSES)),
                                    n_boot=2000, clusters=CLUSTERS)
    assert ten[2] - ten[1] == pytest.approx(one[2] - one[1], rel=0.1)


def test_paired_p99_keeps_the_pairing_when_task_difficulty_dominates():
    """Latency set by the task (sd 10 ms) plus a consistent +1 ms: the paired P99 difference is clearly
    positive and narrow; resampling the tasks of x and y independently would make it ~10 times wider."""
    rng = np.random.default_rng(9)
    difficulty = 100 + rng.normal(0, 10, TASKS)[np.tile(np.arange(TASKS), 5)]
    x = difficulty + 1.0 + rng.normal(0, 0.2, (3, 2, TASKS * 5))
    y = difficulty + rng.normal(0, 0.2, (1, 2, TASKS * 5))
    clusters = np.tile(np.arange(TASKS), 5)
    d, lo, hi = paired_bootstrap_ci(x, y, q=99, n_boot=1000, clusters=clusters)
    assert 0.5 < lo < d < hi < 1.5
    _, ulo, uhi = hierarchical_bootstrap_percentile_ci(x, 99, clusters=clusters)
    assert uhi - ulo > 5 * (hi - lo)  # one side's P99 alone varies with the tasks drawn


def test_tasks_shared_by_runs_are_resampled_jointly():
    """Runs that agree on every task (tasks crossed with runs) must not narrow the interval: it equals one run's."""
    rng = np.random.default_rng(2)
    task = rng.normal(0, 1, 500)
    one = hierarchical_bootstrap_ci(task[None, None], n_boot=2000)
    five = hierarchical_bootstrap_ci(np.tile(task, (5, 1, 1)), n_boot=2000)
    assert five[2] - five[1] == pytest.approx(one[2] - one[1], rel=0.1)


def test_trailing_columns_keep_their_correlation():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (3, 1, 300))
    boot = hierarchical_bootstrap_means(np.stack([a, 2 * a], axis=-1), n_boot=500)
    assert boot.shape == (500, 2) and np.corrcoef(boot.T)[0, 1] > 0.999


def test_percentile_interval_contains_the_known_quantile():
    rng = np.random.default_rng(4)
    x = rng.exponential(1.0, (3, 2, 2000))
    value, lo, hi = hierarchical_bootstrap_percentile_ci(x, 99)
    assert lo <= value <= hi and lo < np.log(100) < hi


def test_paired_difference_cancels_task_difficulty():
    """Two schedulers on the same hard/easy tasks: the unpaired CIs overlap, the paired difference is clear."""
    rng = np.random.default_rng(5)
    difficulty = rng.normal(0, 10, (1, 1, 500))
    x, y = difficulty + 1.0 + rng.normal(0, 0.5, (3, 1, 500)), difficulty + rng.normal(0, 0.5, (1, 1, 500))
    d, lo, hi = paired_bootstrap_ci(x, y)
    assert d == pytest.approx(1.0, abs=0.15) and 0.5 < lo < d < hi < 1.5
    xa, ya = hierarchical_bootstrap_ci(x), hierarchical_bootstrap_ci(y)
    assert xa[1] < ya[2]  # unpaired intervals overlap
    p, plo, phi = paired_bootstrap_ci(x, y, q=99)
    assert plo <= p <= phi


def test_paired_difference_of_spread_runs_is_wide():
    x = seeds_with_spread(20, 1000, between=2.0) + 1.0  # mean of 20 seeds with sd 2: se 0.45
    y = np.zeros((1, 1, 1000))
    _, lo, hi = paired_bootstrap_ci(x, y, n_boot=1000)
    assert hi - lo > 1.2


def test_probability_of_improvement():
    rng = np.random.default_rng(6)
    y = rng.normal(0, 1, (1, 1, 2000))
    assert probability_of_improvement(y + 10, y)[0] == 1.0
    assert probability_of_improvement(y, y)[0] == 0.5  # ties count one half
    assert probability_of_improvement(y + 10, y, higher_is_better=False)[0] == 0.0
    # X = Y + N(0, 1) noise around the same task: P(X > Y) = 0.5 exactly in expectation; with a +1 shift,
    # P(N(1, 1) > 0) = Phi(1) = 0.841
    p, lo, hi = probability_of_improvement(y + 1 + rng.normal(0, 1, (4, 1, 2000)), y)
    assert p == pytest.approx(0.841, abs=0.02) and lo < p < hi


def test_runs_array_orders_episodes_and_checks_sizes():
    frame = pd.DataFrame({"run": ["a", "a", "b", "b"], "eval_seed": 0, "episode": [1, 0, 0, 1],
                          "v": [2.0, 1.0, 3.0, 4.0]})
    assert runs_array(frame, "v").tolist() == [[[1.0, 2.0]], [[3.0, 4.0]]]
    heuristic = frame.assign(run=np.nan).iloc[:2]
    assert runs_array(heuristic, "v").shape == (1, 1, 2)
    with pytest.raises(ValueError, match="same number of episodes"):
        runs_array(frame.iloc[:3], "v")


def test_task_clusters_follow_the_task_of_each_episode():
    frame = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 4, "eval_seed": 0, "episode": [0, 1, 2, 3] * 2,
                          "task_id": ["t7", "t3", "t7", "t3"] * 2, "v": 1.0})
    assert task_clusters(frame).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="same task_id in every"):
        task_clusters(frame.assign(task_id=["t7", "t3", "t7", "t3", "t3", "t7", "t3", "t7"]))
