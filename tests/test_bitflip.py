"""Chapter_14_wo_HER.py and Chapter_14_HER.py: each bug CHAPTER14.md lists for the book's bit-flipping code
has a check here that fails on the book's code (tests/book_reference.py) and passes on ours."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

from Chapter_14_HER import hindsight_transitions
from Chapter_14_wo_HER import (
    Config,
    Env,
    Episodes,
    Model,
    ReplayBuffer,
    compute_td_error,
    get_action,
    play_episodes,
    update_target,
)
from tests.book_reference import BookEnv, book_get_action, book_hindsight

CPU = torch.device("cpu")


def scripted_episode(start, target, actions, max_steps) -> Episodes:
    """One episode of our Env from a given start and target, with the given actions."""
    env = Env(len(start), max_steps=max_steps, num_envs=1)
    env.reset()
    env.state[:] = start
    env.target[:] = target
    state, goal = env.state.copy(), env.target.copy()
    steps = []
    for a in actions:
        if env.done.all():
            break
        running = ~env.done
        next_state, reward, terminated, truncated = env.step(np.array([a]))
        steps.append((state, np.array([a]), reward, next_state, terminated, truncated, running))
        state = next_state
    return Episodes(*(np.stack(x) for x in list(zip(*steps))[:6]), goal, np.stack([s[6] for s in steps]))


# --- The environment ---------------------------------------------------------------------------------------


def first_state_survives_a_step(reset, step) -> bool:
    state, _ = reset()
    before = state.copy()
    step()
    return np.array_equal(state, before)


def test_reset_hands_out_a_copy_the_env_does_not_mutate():
    np.random.seed(0)
    book = BookEnv(8)
    assert not first_state_survives_a_step(book.reset, lambda: book.step(0))  # the book's bug

    ours = Env(8, num_envs=4, seed=0)
    assert first_state_survives_a_step(ours.reset, lambda: ours.step(np.zeros(4, dtype=int)))
    next_state, *_ = ours.step(np.ones(4, dtype=int))
    kept = next_state.copy()
    ours.step(np.full(4, 2))
    assert np.array_equal(next_state, kept)


def test_stepping_a_finished_episode_is_a_clear_error():
    book = BookEnv(2)
    book.reset()
    book.target = book.state.copy()
    book.target[0] ^= 1
    book.step(0)  # reaches the target
    with pytest.raises(NameError):  # `raise RESET`: an undefined name
        book.step(0)

    ours = Env(2, num_envs=1, seed=0)
    ours.reset()
    ours.target[:] = ours.state
    ours.target[0, 0] ^= 1
    ours.step(np.array([0]))
    with pytest.raises(RuntimeError, match="call reset"):
        ours.step(np.array([0]))


def test_episode_length_is_num_bits_by_default_and_a_hyperparameter():
    def length(env_step, done):
        steps = 0
        while not done():
            env_step()
            steps += 1
        return steps

    np.random.seed(0)
    book = BookEnv(11)
    book.reset()
    book.target = 1 - book.state  # never reached by flipping bit 0 back and forth
    assert length(lambda: book.step(0), lambda: book.done) == 14  # the book: num_bits + 3

    for max_steps, expected in ((None, 11), (14, 14)):
        ours = Env(11, max_steps=max_steps, num_envs=1, seed=0)
        ours.reset()
        ours.target[:] = 1 - ours.state
        assert length(lambda: ours.step(np.array([0])), lambda: ours.done.all()) == expected
    assert Config().episode_length == 11 and Config(max_steps=14).episode_length == 14


def test_time_limit_is_a_truncation_not_a_termination():
    episode = scripted_episode(np.zeros(4, np.uint8), np.ones(4, np.uint8), [0, 0, 0, 0], max_steps=4)
    assert episode.truncated[-1, 0] and not episode.terminated[-1, 0]
    assert not episode.terminated.any()
    # The book's env reports the time limit as done, which its TD target reads as terminal.
    np.random.seed(1)
    book = BookEnv(4)
    book.reset()
    book.target = 1 - book.state
    dones = [book.step(0)[2] for _ in range(7)]
    assert dones[-1] is True


def test_reaching_the_goal_terminates_with_reward_zero():
    episode = scripted_episode(np.zeros(3, np.uint8), np.array([1, 1, 0], np.uint8), [0, 1, 2], max_steps=3)
    assert episode.reward[:, 0].tolist() == [-1.0, 0.0]
    assert episode.terminated[:, 0].tolist() == [False, True]
    assert episode.success.tolist() == [True] and episode.frames == 2


# --- Acting ------------------------------------------------------------------------------------------------


def test_epsilon_is_honoured():
    torch.manual_seed(0)
    num_bits = 6
    model = Model(2 * num_bits, num_bits)
    rng = np.random.default_rng(0)
    state = rng.integers(0, 2, (2000, num_bits))
    goal = rng.integers(0, 2, (2000, num_bits))
    with torch.no_grad():
        greedy = model(torch.tensor(state).float(), torch.tensor(goal).float()).argmax(1).numpy()

    assert np.array_equal(get_action(model, state, goal, 0.0, rng), greedy)
    random_actions = get_action(model, state, goal, 1.0, rng)
    assert abs((random_actions == greedy).mean() - 1 / num_bits) < 0.05  # uniform, not greedy
    assert set(random_actions) == set(range(num_bits))

    random.seed(0)  # the book: epsilon=0 still explores 10% of the time
    book = np.array([book_get_action(model, s, g, num_bits, epsilon=0.0) for s, g in zip(state[:500], goal[:500])])
    assert (book != greedy[:500]).any()


# --- Hindsight relabelling ---------------------------------------------------------------------------------


def random_episodes(num_bits=5, num_envs=64, seed=0) -> Episodes:
    torch.manual_seed(seed)
    env = Env(num_bits, num_envs=num_envs, seed=seed)
    return play_episodes(env, Model(2 * num_bits, num_bits), epsilon=1.0, rng=np.random.default_rng(seed))


def each_copy_keeps_its_own_action(state, action, next_state) -> bool:
    """Flipping bit `action` of `state` must give `next_state`."""
    flipped = np.array(state, copy=True)
    flipped[np.arange(len(action)), action] ^= 1
    return np.array_equal(flipped, next_state)


def reward_and_termination_fit_the_goal(reward, next_state, terminated, goal) -> bool:
    reached = (np.asarray(next_state) == np.asarray(goal)).all(axis=1)
    return np.array_equal(np.asarray(reward) == 0, reached) and np.array_equal(np.asarray(terminated, bool), reached)


def book_pushes(episodes: Episodes, new_goals: int):
    """Run the book's hindsight block on each of our episodes, in its list format."""
    np.random.seed(0)
    rows = []
    for i in range(episodes.running.shape[1]):
        steps = np.flatnonzero(episodes.running[:, i])
        episode = [
            (
                episodes.state[t, i],
                episodes.reward[t, i],
                bool(episodes.terminated[t, i] or episodes.truncated[t, i]),
                episodes.next_state[t, i],
                episodes.goal[i],
            )
            for t in steps
        ]
        rows += book_hindsight(episode, episodes.action[steps[-1], i], episodes.state.shape[-1], new_goals)
    state, action, reward, next_state, done, goal = (np.array(x) for x in zip(*rows))
    return state, action, reward, next_state, done, goal


def test_relabelled_transitions_keep_their_own_action():
    episodes = random_episodes()
    state, action, _, next_state, _, _ = book_pushes(episodes, 4)
    assert not each_copy_keeps_its_own_action(state, action, next_state)  # the book: the episode's last action

    state, action, _, next_state, _, _ = hindsight_transitions(episodes, 4, np.random.default_rng(0))
    assert len(action) == 4 * episodes.frames
    assert each_copy_keeps_its_own_action(state, action, next_state)


def test_relabelled_reward_and_termination_are_recomputed_for_the_new_goal():
    episodes = random_episodes()
    _, _, reward, next_state, done, goal = book_pushes(episodes, 4)
    assert not reward_and_termination_fit_the_goal(reward, next_state, done, goal)  # the book keeps the old done

    _, _, reward, next_state, terminated, goal = hindsight_transitions(episodes, 4, np.random.default_rng(0))
    assert reward_and_termination_fit_the_goal(reward, next_state, terminated, goal)
    assert terminated.any() and not terminated.all()


def goal_steps(next_states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """For an episode whose next_states are all different, the step at which each goal was reached."""
    return np.array([int(np.flatnonzero((next_states == g).all(axis=1))[0]) for g in goals])


def test_new_goals_come_from_the_future_of_the_same_episode_up_to_its_end():
    # 14 steps of 11 bits (the book's episode length), every next state different: 0..10 then 0..2 again.
    num_bits, length, k = 11, 14, 200
    actions = list(range(num_bits)) + [0, 1, 2]
    start = np.zeros(num_bits, np.uint8)
    episode = scripted_episode(
        start, np.full(num_bits, 1, np.uint8) ^ np.eye(num_bits, dtype=np.uint8)[5], actions, length
    )
    next_states = episode.next_state[:, 0]
    assert len(np.unique(next_states, axis=0)) == length

    state, _, _, _, _, goal = hindsight_transitions(episode, k, np.random.default_rng(0))
    step = np.repeat(np.arange(length), k)
    reached = goal_steps(next_states, goal)
    assert (reached >= step).all()  # never a past state
    for t in range(length):  # every future step, the last ones (beyond num_bits) included
        assert set(reached[step == t]) == set(range(t, length))

    np.random.seed(0)  # the book: any step index below num_bits, past ones included, never the last three
    book_episode = [(episode.state[t, 0], -1, False, next_states[t], episode.goal[0]) for t in range(length)]
    book_goals = np.array([row[-1] for row in book_hindsight(book_episode, actions[-1], num_bits, k)])
    book_steps = np.repeat(np.arange(length), k)
    book_reached = goal_steps(next_states, book_goals)
    assert (book_reached < book_steps).any()
    assert book_reached.max() < num_bits


def test_hindsight_with_zero_goals_adds_nothing():
    episodes = random_episodes()
    assert all(len(x) == 0 for x in hindsight_transitions(episodes, 0, np.random.default_rng(0)))


# --- Replay buffer, TD update, target network --------------------------------------------------------------


def test_replay_buffer_ring_and_types():
    buffer = ReplayBuffer(5, 3, CPU, seed=0)
    for start in (0, 4):
        n = 4
        bits = np.arange(start, start + n)[:, None] % 2 * np.ones((n, 3), np.uint8)
        buffer.push(bits, np.arange(start, start + n), -np.ones(n), 1 - bits, np.zeros(n), bits)  # action = its number
    assert len(buffer) == 5
    assert buffer.action.tolist() == [5, 6, 7, 3, 4]  # 0-3 written, then 4-7 wrapping around
    state, action, reward, next_state, terminated, goal = buffer.sample(7)
    assert state.dtype == torch.float32 and action.dtype == torch.long and state.shape == (7, 3)
    big = ReplayBuffer(2, 3, CPU)
    big.push(np.zeros((6, 3)), np.arange(6), np.zeros(6), np.zeros((6, 3)), np.zeros(6), np.zeros((6, 3)))
    assert len(big) == 2 and sorted(big.action.tolist()) == [4, 5]


def test_td_target_bootstraps_through_truncation_and_stops_at_termination():
    torch.manual_seed(0)
    num_bits, gamma = 4, 0.9
    model = Model(2 * num_bits, num_bits)
    target_model = Model(2 * num_bits, num_bits)
    rng = np.random.default_rng(0)
    state, next_state, goal = (rng.integers(0, 2, (2, num_bits)) for _ in range(3))
    action, reward = np.array([1, 2]), np.array([-1.0, 0.0])
    terminated = np.array([0.0, 1.0])  # row 0: a time-limit end (not terminal); row 1: goal reached
    buffer = ReplayBuffer(2, num_bits, CPU)
    buffer.push(state, action, reward, next_state, terminated, goal)

    s, g, s2 = (torch.tensor(x).float() for x in (state, goal, next_state))
    with torch.no_grad():
        q = model(s, g)[[0, 1], [1, 2]]
        expected = torch.tensor([-1.0 + gamma * target_model(s2, g)[0].max(), 0.0])
    want = (q - expected).pow(2).mean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    buffer.generator.manual_seed(0)
    loss = compute_td_error(model, target_model, optimizer, buffer, 256, gamma)  # both rows, many times
    assert loss is None  # batch larger than the buffer
    buffer.sample = lambda n: (
        s,
        torch.tensor(action),
        torch.tensor(reward).float(),
        s2,
        torch.tensor(terminated).float(),
        g,
    )
    loss = compute_td_error(model, target_model, optimizer, buffer, 2, gamma)
    assert torch.allclose(loss, want)


def test_update_target_moves_the_target_network():
    torch.manual_seed(0)
    model, target = Model(4, 2), Model(4, 2)
    before = copy.deepcopy(target)
    update_target(target, model, 0.25)
    for p, p0, m in zip(target.parameters(), before.parameters(), model.parameters()):
        assert torch.allclose(p, 0.75 * p0 + 0.25 * m)
    update_target(target, model, 1.0)
    assert all(torch.equal(p, m) for p, m in zip(target.parameters(), model.parameters()))


def test_training_updates_the_target_network_every_cycle(monkeypatch, tmp_path):
    import Chapter_14_wo_HER as dqn

    calls = []
    real = dqn.update_target
    monkeypatch.setattr(dqn, "update_target", lambda t, m, tau: (calls.append(tau), real(t, m, tau)))
    summary = dqn.main(
        Config(
            num_bits=4,
            max_frames=300,
            episodes_per_cycle=4,
            batch_size=8,
            eval_episodes=4,
            device="cpu",
            run_dir=str(tmp_path),
        )
    )
    cycles = summary["episodes"] // 4
    assert len(calls) == cycles > 1 and set(calls) == {Config().tau}
