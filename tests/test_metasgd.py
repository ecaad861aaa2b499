"""Chapter_14_MetaSGD-VPG.py: Meta-SGD with a vanilla policy gradient on Particles2D (environment, loss pieces,
the book's two bugs, seeding, learning, command line, bad input)."""

from __future__ import annotations

import json
import sys

import cherry as ch
import numpy as np
import pytest
import torch
from learn2learn.gym.envs.particles import Particles2DEnv

from tests.conftest import ROOT, assert_one_line_error, load_script, run_cli, run_script

msgd = load_script("Chapter_14_MetaSGD-VPG.py")
sys.path.insert(0, str(ROOT / "bench"))  # bench/metasgd_speed.py keeps the book's collector
metasgd_speed = load_script("bench/metasgd_speed.py")
CPU = torch.device("cpu")


def tiny_config(**overrides):
    values = dict(num_iterations=2, meta_bsz=2, adapt_bsz=4, eval_tasks=2, eval_steps=1, device="cpu")
    values.update(overrides)
    return msgd.Config(**values)


def test_batched_particles_follow_learn2learn_dynamics():
    rng = np.random.default_rng(0)
    task = {"goal": np.array([0.23, -0.41])}
    envs = [Particles2DEnv(task) for _ in range(6)]
    batch = msgd.Particles2DBatch(6, CPU)
    batch.set_task(task)
    state = batch.reset()
    for env in envs:
        env.reset()
    for _ in range(30):
        action = rng.normal(0, 0.08, size=(6, 2)).astype(np.float32)
        state, reward, done = batch.step(torch.from_numpy(action))
        for i, env in enumerate(envs):
            s, r, d, _ = env.step(action[i])
            assert np.allclose(state[i].numpy(), s, atol=1e-6)
            assert abs(float(reward[i]) - r) < 1e-5
            assert bool(done[i]) == d


def test_batched_particles_end_within_0_01_of_the_goal():
    batch = msgd.Particles2DBatch(2, CPU)
    batch.set_task({"goal": [0.1, 0.1]})
    batch.reset()
    _, reward, done = batch.step(torch.tensor([[0.095, 0.105], [0.08, 0.1]]))
    assert done.tolist() == [True, False]
    assert reward[1].item() == pytest.approx(-0.02, abs=1e-6)


def test_lockstep_runner_pads_finished_episodes():
    runner = msgd.LockstepRunner(3, CPU)
    runner.set_task({"goal": [0.05, 0.0]})

    def policy(state):  # episode 0 reaches the goal in one step, the others never move
        action = torch.zeros_like(state)
        action[0] = torch.tensor([0.05, 0.0])
        return action

    episodes = runner.run(policy, episodes=3)
    assert episodes.states.shape == (msgd.MAX_STEPS, 3, 2)
    assert episodes.mask[:, 0].sum() == 1 and episodes.mask[:, 1:].all()
    assert episodes.dones[:, 0].tolist() == [1.0] * msgd.MAX_STEPS  # done at its end and on every padded step
    assert episodes.dones[:-1, 1].sum() == 0 and episodes.dones[-1, 1] == 1  # the time limit ends the others
    assert episodes.returns()[0] == pytest.approx(0.0, abs=1e-6)
    assert episodes.returns()[1] == pytest.approx(-0.05 * msgd.MAX_STEPS, rel=1e-5)


def test_episodes_from_cherry_replay_regroup_episode_by_episode():
    replay = ch.ExperienceReplay()
    for t, (reward, done) in enumerate([(1.0, 0), (2.0, 1), (3.0, 0), (4.0, 0), (5.0, 1)]):
        replay.append(
            torch.tensor([t, 0.0]),
            torch.tensor([0.0, t]),
            torch.tensor([reward]),
            torch.tensor([t + 1.0, 0]),
            torch.tensor([float(done)]),
        )
    episodes = metasgd_speed.episodes_from_replay(replay)
    assert episodes.rewards.t().tolist() == [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]
    assert episodes.dones.t().tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]
    assert episodes.mask.t().tolist() == [[True, True, False], [True, True, True]]
    assert episodes.states[:, 1, 0].tolist() == [2.0, 3.0, 4.0]


class FixedValues(torch.nn.Module):
    """A stand-in baseline with given values, so advantages can be checked by hand."""

    def __init__(self, values, next_values):
        super().__init__()
        self.values, self.next_values = values, next_values

    def fit(self, states, returns, mask=None):
        self.fitted_returns = returns

    def forward(self, states):
        return self.next_values if states is self.next_states else self.values


def test_advantages_with_tau_1_are_discounted_returns_minus_values_per_episode():
    # two episodes side by side: lengths 3 and 2 (the second padded), gamma 0.5, tau 1
    rewards = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    values = torch.tensor([[0.5, 1.0], [0.25, 2.0], [0.125, 7.0]])
    next_values = torch.tensor([[9.0, 9.0], [9.0, 4.0], [6.0, 9.0]])
    baseline = FixedValues(values, next_values)
    states, next_states = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
    baseline.next_states = next_states
    advantages = msgd.compute_advantages(baseline, 1.0, 0.5, rewards, dones, states, next_states, mask)
    # returns: episode 0: [1 + .5*2 + .25*3, 2 + .5*3, 3] = [2.75, 3.5, 3]; episode 1: [10 + .5*20, 20] = [20, 20]
    assert baseline.fitted_returns[:, 0].tolist() == [2.75, 3.5, 3.0]
    assert baseline.fitted_returns[:2, 1].tolist() == [20.0, 20.0]
    # GAE(tau=1) telescopes to return - value; the book's bootstrap puts V(next state) in place of V(s) on done steps
    expected = torch.tensor([[2.75 - 0.5, 20.0 - 1.0], [3.5 - 0.25, 20.0 - 4.0], [3.0 - 6.0, 0.0]])
    assert torch.allclose(advantages[mask], expected[mask])


def test_maml_a2c_loss_is_minus_mean_log_prob_times_normalised_advantage():
    torch.manual_seed(0)
    policy = msgd.DiagNormalPolicy(2, 2)
    runner = msgd.LockstepRunner(5, CPU)
    runner.set_task({"goal": [0.3, 0.2]})
    episodes = runner.run(policy, episodes=5)
    baseline = msgd.LinearValue(2)
    loss = msgd.maml_a2c_loss(episodes, policy, baseline, 0.99, 0.95)
    advantages = msgd.compute_advantages(
        msgd.LinearValue(2),
        0.95,
        0.99,
        episodes.rewards,
        episodes.dones,
        episodes.states,
        episodes.next_states,
        episodes.mask,
    )[episodes.mask]
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_probs = (
        torch.distributions.Normal(policy.mean(episodes.states), 1.0).log_prob(episodes.actions).mean(-1)[episodes.mask]
    )
    assert loss.item() == pytest.approx(-(log_probs * advantages).mean().item(), rel=1e-4)
    loss.backward()
    assert policy.sigma.grad is not None and policy.mean[0].weight.grad.abs().sum() > 0


def test_linear_value_fits_returns_with_a_small_regulariser_not_the_books_action_size():
    torch.manual_seed(0)
    states = torch.rand(50, 8, 2) - 0.5
    t = (torch.arange(50.0) / 100).view(-1, 1).expand(50, 8)
    returns = 3 * states[..., 0] - 2 * states[..., 1] ** 2 + 5 * t - 4 * t**2 + 0.5  # in the span of the features
    ours = msgd.LinearValue(2)
    ours.fit(states, returns)
    assert torch.allclose(ours(states), returns, atol=1e-3)
    books = msgd.LinearValue(2, 2)  # the book: LinearValue(env.state_size, env.action_size), reg = 2.0
    books.fit(states, returns)
    assert (books(states) - returns).abs().max() > 0.05
    _, _, baseline, _ = msgd.make_learners(tiny_config(), CPU)
    assert baseline.reg == 1e-5


def test_linear_value_ignores_padded_steps():
    states = torch.rand(10, 3, 2)
    returns = states.sum(-1)
    mask = torch.ones(10, 3, dtype=torch.bool)
    mask[6:, 0] = False
    noisy = returns.clone()
    noisy[6:, 0] = 1000.0
    baseline = msgd.LinearValue(2)
    baseline.fit(states, noisy, mask)
    assert torch.allclose(baseline(states)[mask], returns[mask], atol=1e-3)


def test_adapt_lr_sets_the_initial_inner_learning_rates():
    _, meta_learner, _, _ = msgd.make_learners(tiny_config(adapt_lr=0.3, meta_lr=0.02), CPU)
    assert all(torch.all(lr == 0.3) for lr in meta_learner.lrs)  # the book: MetaSGD(policy, lr=meta_lr)


def test_the_outer_step_updates_the_learned_learning_rates():
    torch.manual_seed(0)
    config = tiny_config()
    runner = msgd.LockstepRunner(config.adapt_bsz, CPU)
    tasks = msgd.task_sampler(0).sample_tasks(config.meta_bsz)

    policy, meta_learner, baseline, opt = msgd.make_learners(config, CPU)
    optimised = {id(p) for group in opt.param_groups for p in group["params"]}
    assert all(id(lr) in optimised for lr in meta_learner.lrs)
    before = [lr.detach().clone() for lr in meta_learner.lrs]
    msgd.meta_step(meta_learner, opt, tasks, runner, baseline, config)
    assert all(not torch.equal(b, lr) for b, lr in zip(before, meta_learner.lrs))

    # the book's optimiser, Adam(policy.parameters()), never moves them
    book_opt = torch.optim.Adam(policy.parameters(), lr=config.meta_lr)
    before = [lr.detach().clone() for lr in meta_learner.lrs]
    msgd.meta_step(meta_learner, book_opt, tasks, runner, baseline, config)
    assert all(torch.equal(b, lr) for b, lr in zip(before, meta_learner.lrs))


def test_task_goals_follow_the_seed():
    a = msgd.task_sampler(7).sample_tasks(3)
    b = msgd.task_sampler(7).sample_tasks(3)
    c = msgd.task_sampler(8).sample_tasks(3)
    assert all(np.array_equal(x["goal"], y["goal"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0]["goal"], c[0]["goal"])
    assert all(np.all(np.abs(x["goal"]) <= 0.5) for x in a)


def test_same_seed_same_numbers(tmp_path):
    first = msgd.main(tiny_config(run_dir=str(tmp_path / "a")))
    second = msgd.main(tiny_config(run_dir=str(tmp_path / "b")))
    third = msgd.main(tiny_config(run_dir=str(tmp_path / "c"), seed=3))
    keys = [k for k in first if k.startswith("return_after")]
    assert [first[k] for k in keys] == [second[k] for k in keys]
    assert [first[k] for k in keys] != [third[k] for k in keys]


def test_adaptation_pays_off_after_a_short_meta_training(tmp_path):
    """Fixed seed, fixed budget: after meta-training, one adaptation step on a fresh task raises the return."""
    summary = msgd.main(
        tiny_config(
            run_dir=str(tmp_path),
            num_iterations=20,
            meta_bsz=4,
            adapt_bsz=8,
            eval_tasks=8,
            eval_steps=1,
            meta_lr=0.05,
            seed=1,
        )
    )
    assert summary["return_after_1_steps"] > summary["return_after_0_steps"] + 2.0, summary


def test_upstream_collector_gives_the_same_kind_of_batch():
    """The book's collector, kept in bench/metasgd_speed.py for the speed comparison."""
    runner = metasgd_speed.UpstreamRunner(2, seed=0)
    try:
        runner.set_task({"goal": np.array([0.2, 0.1])})
        episodes = runner.run(msgd.DiagNormalPolicy(2, 2), episodes=3)
    finally:
        runner.close()
    assert episodes.states.shape[1:] == (3, 2) and episodes.mask.any(0).all()
    assert episodes.rewards.max() <= 0 and episodes.dones[-1].tolist() == [1.0, 1.0, 1.0]


def test_cli_smoke_writes_the_run_directory(tmp_path):
    result = run_script(
        "Chapter_14_MetaSGD-VPG.py",
        "--num-iterations",
        "2",
        "--meta-bsz",
        "2",
        "--adapt-bsz",
        "3",
        "--eval-tasks",
        "2",
        "--device",
        "cpu",
        "--run-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "return_after_0_steps",
        "return_after_1_steps",
        "return_after_2_steps",
        "return_after_3_steps",
        "iterations",
        "seconds",
    ):
        assert key in summary
    for name in ("config.json", "metrics.csv", "learning_curve.png", "trajectories.png", "meta_learner.pt"):
        assert (tmp_path / name).exists(), name
    assert "fresh tasks after 0..3 adaptation steps" in result.stdout.strip().splitlines()[-1]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("iteration,return_before,return_after,adaptation_loss,mean_adapt_lr")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--meta-bsz", "0"], "--meta-bsz must be at least 1"),
        (["--adapt-steps", "-1"], "--adapt-steps must be >= 0"),
        (["--collector", "upstream"], "unrecognized arguments: --collector"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli("Chapter_14_MetaSGD-VPG.py", *args, "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()
