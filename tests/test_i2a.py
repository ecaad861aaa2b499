"""Chapter_14_I2A.py: the Imagination-Augmented Agent (the book's bugs, each with a test that fails on the book's
behaviour; command line; bad input)."""

from __future__ import annotations

import importlib
import json
import sys

from common.minipacman import MiniPacman
from common.runtime import save_checkpoint

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ROOT, assert_one_line_error, load_script, run_cli, run_script

i2a = load_script("Chapter_14_I2A.py")
img = load_script("Chapter_14_Imagination.py")
a2c = load_script("Chapter_14_Imagine_A2C.py")
CPU = torch.device("cpu")
IN_SHAPE = (3, 15, 19)


class RecordingModel(torch.nn.Module):
    """A stand-in environment model: 'imagines' the input frame with pacman's pixel (0, 0) coloured by the action,
    and a reward class equal to the action, and records its inputs."""

    def __init__(self):
        super().__init__()
        self.inputs = []
        self.in_shape = IN_SHAPE

    def forward(self, inputs):
        self.inputs.append(inputs.clone())
        state, actions = inputs[:, :3], inputs[:, 3:]
        frames = state.clone()
        classes = img.pix_to_target(frames).view(len(inputs), -1)
        action = actions[:, :, 0, 0].argmax(1)
        classes[:, 0] = action  # pixel (0, 0) shows the action as its colour class
        logits = F.one_hot(classes.view(-1), 7).float()
        reward = F.one_hot(action, 10).float()
        return logits, reward


def frames(n: int) -> torch.Tensor:
    out = []
    for seed in range(n):
        state, _ = MiniPacman("regular").reset(seed=seed)
        out.append(torch.from_numpy(state))
    return torch.stack(out)


def test_each_state_gets_its_own_rollouts_one_per_action():
    model = RecordingModel()
    core = i2a.ImaginationCore(1, IN_SHAPE, 5, 10, model, a2c.ActorCritic(IN_SHAPE, 5))
    states = frames(3)
    imagined_state, imagined_reward = core(states)
    assert imagined_state.shape == (1, 15, 3, 15, 19) and imagined_reward.shape == (1, 15, 10)
    for i in range(3):
        for a in range(5):
            row = i * 5 + a
            inputs = model.inputs[0][row]
            assert torch.equal(inputs[:3], states[i])  # the book paired row i*5+a with state (i*5+a) % batch
            assert inputs[3 + a].eq(1).all() and inputs[3:].sum() == 15 * 19
            assert imagined_reward[0, row].argmax() == a
            # the frame comes back in the env's layout: same as the state except pixel (0, 0)
            diff = (imagined_state[0, row] != torch.ceil(states[i])).any(0)
            assert diff.nonzero().tolist() in ([[0, 0]], [])


def test_the_books_pairing_mixes_states_up():
    # the book's ImaginationCore: state.unsqueeze(0).repeat(num_actions, ...) with actions [0..4] * batch
    states = frames(3)
    books = states.unsqueeze(0).repeat(5, 1, 1, 1, 1).view(-1, *IN_SHAPE)
    rows_of_state_1 = books[5:10]
    assert not all(torch.equal(r, states[1]) for r in rows_of_state_1)
    ours = states.repeat_interleave(5, 0)[5:10]
    assert all(torch.equal(r, states[1]) for r in ours)


def test_deeper_rollouts_feed_one_action_per_rollout():
    model = RecordingModel()
    distil = a2c.ActorCritic(IN_SHAPE, 5)
    core = i2a.ImaginationCore(3, IN_SHAPE, 5, 10, model, distil)
    imagined_state, imagined_reward = core(frames(2))
    assert imagined_state.shape == (3, 10, 3, 15, 19)
    assert len(model.inputs) == 3
    for inputs in model.inputs:
        planes = inputs[:, 3:, 0, 0]
        assert planes.sum(1).eq(1).all()  # exactly one action per rollout (the book's indexing set several)
    # the book's one-hot: onehot[range(N), action] with action of shape (N, 1) sets N actions per row
    action = torch.tensor([[1], [3], [0], [2]])
    books = torch.zeros(4, 5)
    books[range(4), action] = 1
    assert books.sum(1).gt(1).any()


def test_the_encoder_reads_the_rollout_backwards():
    torch.manual_seed(0)
    encoder = i2a.RolloutEncoder(IN_SHAPE, 10, 8)
    states = torch.rand(3, 2, *IN_SHAPE)
    rewards = F.one_hot(torch.randint(10, (3, 2)), 10).float()
    hidden = encoder(states, rewards)
    features = encoder.features(states.view(-1, *IN_SHAPE)).view(3, 2, -1)
    _, backwards = encoder.gru(torch.cat([features, rewards], 2).flip(0))
    _, forwards = encoder.gru(torch.cat([features, rewards], 2))
    assert torch.allclose(hidden, backwards.squeeze(0))
    assert not torch.allclose(hidden, forwards.squeeze(0))


def test_imagined_frames_use_the_models_palette_and_layout():
    env = MiniPacman("regular")
    state, _ = env.reset(seed=4)
    state = torch.from_numpy(state)
    classes = img.pix_to_target(state.unsqueeze(0))
    decoded = img.target_to_pix(classes)
    assert torch.equal(decoded[0], torch.ceil(state))
    # the book's I2A palette swapped pacman (green) and the power pills (cyan) against the model's classes
    books_palette = torch.tensor(
        [
            (0.0, 1.0, 0.0),
            (0.0, 1.0, 1.0),
            (0.0, 0.0, 1.0),
            (1.0, 1.0, 1.0),
            (1.0, 1.0, 0.0),
            (0.0, 0.0, 0.0),
            (1.0, 0.0, 0.0),
        ]
    )
    books = books_palette[classes].view(1, 15, 19, 3).permute(0, 3, 1, 2)
    assert not torch.equal(books[0], torch.ceil(state))


def test_the_environment_model_is_frozen_and_in_eval_mode():
    model = img.new_env_model("regular", CPU).train()
    core = i2a.ImaginationCore(1, IN_SHAPE, 5, 10, model, a2c.ActorCritic(IN_SHAPE, 5))
    assert not core.env_model.training
    assert not any(p.requires_grad for p in core.env_model.parameters())
    agent = i2a.I2A(IN_SHAPE, 5, 10, 16, core)
    names = [n for n, _ in agent.named_parameters()]
    assert not any(
        n.startswith("imagination") for n in names
    )  # neither the env model nor the distil policy is the agent's
    imagined_state, _ = core(frames(2))
    assert not imagined_state.requires_grad


def test_channels_last_imagination_stays_channels_last_and_gives_the_same_numbers():
    """The imagination runs the environment model on channels-last frames (faster CPU convolutions). The pooled map
    that each basic block tiles beside its input has no layout of its own, so torch.cat used to return the default
    layout and every following convolution copied it back (a third of the model's time on an AVX2 CPU): the block
    now keeps the input's layout, with the same numbers as the default layout."""
    torch.manual_seed(0)
    model = img.new_env_model("regular", CPU).eval()
    inputs = torch.cat([frames(4), F.one_hot(torch.arange(4), 5).float()[:, :, None, None].expand(4, 5, 15, 19)], 1)
    last = inputs.contiguous(memory_format=torch.channels_last)
    block_input = model.conv(last)
    assert model.basic_block1.pool_and_inject(block_input).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(inputs)
        fast = model.to(memory_format=torch.channels_last)(last)
    for a, b in zip(reference, fast):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_distillation_trains_the_distil_policy_towards_the_agent_and_leaves_the_agent_alone():
    torch.manual_seed(0)
    core = i2a.ImaginationCore(1, IN_SHAPE, 5, 10, img.new_env_model("regular", CPU), a2c.ActorCritic(IN_SHAPE, 5))
    agent = i2a.I2A(IN_SHAPE, 5, 10, 16, core)
    distil = core.distil_policy
    states = frames(4)
    logit = agent(states)[0] * 50  # a sharp agent policy, so the distil policy has somewhere to go
    distil_logit, _ = distil(states)
    loss = i2a.distillation_loss(logit, distil_logit, 0.01)
    # 0.01 x the cross-entropy from the agent's policy to the distil policy's
    expected = 0.01 * F.cross_entropy(distil_logit, F.softmax(logit, 1).detach())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in agent.parameters())  # the agent's policy is a fixed target
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in distil.parameters())
    # the distil optimiser's steps lower it
    optimizer = torch.optim.Adam(distil.parameters(), lr=1e-3)
    first = loss.item()
    for _ in range(10):
        optimizer.zero_grad()
        loss = i2a.distillation_loss(logit.detach(), distil(states)[0], 0.01)
        loss.backward()
        optimizer.step()
    assert loss.item() < first
    # the book's line, without the minus sign, is minus the cross-entropy: minimising it pushes the distil policy away
    distil_logit = distil(states)[0]
    books = 0.01 * (F.softmax(logit, 1).detach() * F.log_softmax(distil_logit, 1)).sum(1).mean()
    assert books.item() == pytest.approx(-i2a.distillation_loss(logit, distil_logit, 0.01).item(), rel=1e-5)


def test_acting_and_the_update_reuse_the_same_imagination():
    torch.manual_seed(0)
    model = RecordingModel()
    core = i2a.ImaginationCore(1, IN_SHAPE, 5, 10, model, a2c.ActorCritic(IN_SHAPE, 5))
    agent = i2a.I2A(IN_SHAPE, 5, 10, 16, core)
    states = frames(3)
    imagined = core(states)
    calls = len(model.inputs)
    logit_given, value_given = agent(states, imagined=imagined)
    assert len(model.inputs) == calls  # no second imagination
    logit, value = agent(states)
    assert torch.allclose(logit, logit_given) and torch.allclose(value, value_given)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny A2C agent and environment model, trained by the two scripts' mains."""
    folder = tmp_path_factory.mktemp("models")
    checkpoints = str(folder / "checkpoints")
    a2c.main(
        a2c.Config(
            num_updates=3,
            num_envs=2,
            gif_frames=0,
            device="cpu",
            run_dir=str(folder / "a2c"),
            checkpoint_dir=checkpoints,
        )
    )
    img.main(
        img.Config(
            num_updates=3,
            num_envs=2,
            test_steps=6,
            eval_every=0,
            device="cpu",
            run_dir=str(folder / "imagination"),
            checkpoint_dir=checkpoints,
        )
    )
    return folder / "checkpoints"


@pytest.mark.parametrize("depth", [2])  # depth 2 also runs depth 1's path; depth 1 runs through main() below
def test_cli_smoke(tmp_path, tiny_models, depth):
    result = run_script(
        "Chapter_14_I2A.py",
        "--num-updates",
        "4",
        "--num-envs",
        "2",
        "--log-every",
        "2",
        "--rollout-depth",
        str(depth),
        "--gif-frames",
        "5",
        "--device",
        "cpu",
        "--checkpoint-dir",
        str(tiny_models),
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("mean_return_last_100", "frames", "seconds", "mode"):
        assert key in summary
    assert summary["frames"] == 4 * 5 * 2
    for name in (
        "config.json",
        "metrics.csv",
        "learning_curve.png",
        "episode.gif",
        "i2a_regular",
        "distil_policy_regular",
    ):
        assert (tmp_path / "run" / name).exists(), name
    assert "Chapter_14_I2A: regular" in result.stdout.strip().splitlines()[-1]


def test_missing_env_model_names_the_script_to_run(tmp_path):
    result = run_cli(
        "Chapter_14_I2A.py",
        "--mode",
        "hunt",
        "--checkpoint-dir",
        str(tmp_path / "none"),
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert_one_line_error(result, "python Chapter_14_Imagination.py --mode hunt")
    assert not (tmp_path / "run").exists()


def test_env_model_of_another_mode_is_refused(tmp_path, tiny_models):
    result = run_cli(
        "Chapter_14_I2A.py",
        "--mode",
        "ambush",
        "--env-model",
        str(tiny_models / "env_model_regular"),
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert_one_line_error(result, "not for --mode ambush")
    assert not (tmp_path / "run").exists()


def test_env_model_with_wrong_shapes_is_refused(tmp_path):
    state = img.new_env_model("regular", CPU).state_dict()
    state["image_fc.weight"] = torch.zeros(3, 256)
    save_checkpoint(state, tmp_path / "env_model_regular")
    result = run_cli("Chapter_14_I2A.py", "--checkpoint-dir", str(tmp_path), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "does not fit this model")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rollout-depth", "0"], "--rollout-depth must be at least 1"),
        (["--mode", "chase"], "--mode 'chase' is unknown"),
        (["--device", "cuda:7"], "cuda"),
        (["--reward-scale", "-1"], "--reward-scale must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli("Chapter_14_I2A.py", *args, "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_the_copy_model_imagines_its_input_frame_exactly():
    """The I2A paper's copy-model control: decoded through the same path as the environment model's outputs, every
    imagined frame is the frame it was given, whatever the action, with a constant reward."""
    state = frames(4)
    core = i2a.ImaginationCore(3, IN_SHAPE, 5, 10, i2a.CopyModel(10), a2c.ActorCritic(IN_SHAPE, 5))
    imagined_state, imagined_reward = core(state)
    assert imagined_state.shape == (3, 4 * 5, *IN_SHAPE)
    assert torch.equal(imagined_state, state.repeat_interleave(5, 0).expand(3, -1, -1, -1, -1))
    assert torch.equal(imagined_reward, F.one_hot(torch.zeros(3, 20, dtype=torch.long), 10).float())


def test_copy_model_i2a_needs_no_environment_model_and_matches_the_agents_size(tmp_path):
    summary = i2a.main(
        i2a.Config(
            copy_model=True,
            mode="hunt",
            num_updates=2,
            num_envs=2,
            log_every=1,
            gif_frames=0,
            device="cpu",
            run_dir=str(tmp_path / "run"),
            checkpoint_dir=str(tmp_path / "empty"),  # no env_model_hunt there: not needed
        )
    )
    assert summary["copy_model"] is True and summary["seed"] == 1 and summary["entropy_last"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resolved"]["env_model"] == "copy model"
    agent = torch.load(tmp_path / "run" / "i2a_hunt", weights_only=True)
    real = i2a.I2A(IN_SHAPE, 5, len(i2a.reward_classes("hunt")), 256, None).state_dict()
    assert {k: v.shape for k, v in agent.items()} == {k: v.shape for k, v in real.items()}


@pytest.mark.parametrize("mode", ["regular", "hunt"])
def test_i2a_learns_each_mode_with_the_a2c_scripts_settings(mode):
    """The I2A agent is A2C's learner with imagination: the same per-mode reward scale and entropy bonus."""
    config = i2a.Config(mode=mode)
    assert dict(reward_scale=config.reward_scale, entropy_coef=config.entropy_coef) == a2c.MODE_SETTINGS[mode]
    assert i2a.Config(mode=mode, reward_scale=1.0).reward_scale == 1.0


def test_reward_scale_is_what_the_learner_sees(tmp_path, monkeypatch):
    """As in the A2C script: the rollout holds each reward x reward_scale, the episode statistics the game's own."""
    seen, learnt = [], []
    update, insert = i2a.EpisodeStats.update, i2a.RolloutStorage.insert
    monkeypatch.setattr(i2a.EpisodeStats, "update", lambda self, r, *a: (seen.append(r.copy()), update(self, r, *a)))
    monkeypatch.setattr(
        i2a.RolloutStorage, "insert", lambda self, st, *a: (learnt.append(a[2].clone()), insert(self, st, *a))
    )
    config = dict(copy_model=True, mode="avoid", num_updates=2, num_envs=2, log_every=1, gif_frames=0, device="cpu")
    i2a.main(i2a.Config(**config, reward_scale=0.05, run_dir=str(tmp_path / "run"), checkpoint_dir=str(tmp_path)))
    raw = np.stack(seen)
    assert 0.1 in set(np.round(raw, 6).ravel().tolist())  # avoid's step reward, as the game gives it
    assert torch.equal(torch.stack(learnt).squeeze(-1), torch.from_numpy(raw * 0.05).float())


def test_comparison_bench_runs_and_resumes(tmp_path, monkeypatch, capsys):
    """bench/i2a_vs_a2c.py's command line at a tiny budget (in this process): A2C and copy-model I2A runs, the table
    and the figure; a second call finds the runs done and makes none."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("i2a_vs_a2c")
    argv = ["i2a_vs_a2c.py", "--quick", "--modes", "hunt", "--seeds", "1", "--agents", "a2c", "copy"]
    monkeypatch.setattr(sys, "argv", [*argv, "--work", str(tmp_path / "work"), "--out", str(tmp_path / "table")])
    bench.main()
    record = json.loads((tmp_path / "table.json").read_text())
    assert [(r["mode"], r["agent"], r["seeds"]) for r in record["table"]] == [
        ("hunt", "A2C", [1]),
        ("hunt", "copy-model I2A", [1]),
    ]
    assert all(r["frames"] == 4 * 5 * 2 and r["cpu_s"] > 0 for r in record["runs"])
    # every agent learns hunt with the mode's settings (the A2C script's MODE_SETTINGS)
    assert {(r["reward_scale"], r["entropy_coef"]) for r in record["runs"]} == {(0.05, 0.005)}
    assert (tmp_path / "table.png").stat().st_size > 0
    capsys.readouterr()
    bench.main()
    assert "copy-model I2A hunt seed 1:" not in capsys.readouterr().err  # nothing run again
    # --keep: an earlier record's runs (here seed 7's, made elsewhere) join the table where <work> has none
    earlier = dict(record, runs=[dict(r, seed=7, mean_return_last_100=1.0) for r in record["runs"]])
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    keep = ["--no-run", "--keep", str(tmp_path / "earlier.json"), "--out", str(tmp_path / "merged")]
    monkeypatch.setattr(sys, "argv", [*argv, "--work", str(tmp_path / "work"), *keep])
    bench.main()
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert [(r["agent"], r["seeds"]) for r in merged["table"]] == [("A2C", [1, 7]), ("copy-model I2A", [1, 7])]
    assert merged["kept_from"] == [str(tmp_path / "earlier.json")]
    assert all(r["cpu"] for r in merged["runs"])
    assert merged["paired"] == []  # no I2A in these runs
    # several records: the first that holds a run gives it; an I2A seed 7 in a second record is paired with A2C's
    i2a_row = dict(record["runs"][0], agent="I2A depth 1", seed=7, mean_return_last_100=4.0)
    (tmp_path / "more.json").write_text(json.dumps(dict(record, runs=[i2a_row, dict(i2a_row, agent="A2C")])))
    keep = [
        "--no-run",
        "--keep",
        str(tmp_path / "earlier.json"),
        str(tmp_path / "more.json"),
        "--out",
        str(tmp_path / "m2"),
    ]
    monkeypatch.setattr(sys, "argv", [*argv, "--work", str(tmp_path / "work"), *keep])
    bench.main()
    merged = json.loads((tmp_path / "m2.json").read_text())
    assert [(r["agent"], r["seeds"]) for r in merged["table"]] == [
        ("A2C", [1, 7]),
        ("copy-model I2A", [1, 7]),
        ("I2A depth 1", [7]),
    ]
    assert [(d["minus"], d["seeds"], d["mean_difference"]) for d in merged["paired"]] == [
        ("A2C", [7], 3.0),  # 4.0 - earlier.json's 1.0: the first record holding A2C seed 7 gives it
        ("copy-model I2A", [7], 3.0),
    ]
    # runs of one seed made on two kinds of CPU are two chains: not paired
    (tmp_path / "more.json").write_text(json.dumps(dict(record, runs=[dict(i2a_row, cpu="another CPU")])))
    monkeypatch.setattr(sys, "argv", [*argv, "--work", str(tmp_path / "work"), *keep])
    bench.main()
    assert json.loads((tmp_path / "m2.json").read_text())["paired"] == []
    # --at-frames: longer runs scored by their logged row at those frames, their curves cut there
    at = ["--no-run", "--at-frames", "20", "--out", str(tmp_path / "at20")]
    monkeypatch.setattr(sys, "argv", [*argv, "--work", str(tmp_path / "work"), *at])
    bench.main()
    cut = json.loads((tmp_path / "at20.json").read_text())
    assert all(r["frames"] == 20 and r["run_frames"] == 40 and r["curve"][-1][0] == 20 for r in cut["runs"])
    # the episode length (survival) is scored at the same frames: the logged row's
    assert all(
        r["mean_length_last_100"] == r["length_curve"][-1][1] and r["length_curve"][-1][0] == 20 for r in cut["runs"]
    )
    assert all(len(r["per_seed_length"]) == len(r["seeds"]) for r in cut["table"])
    assert [r["frames"] for r in cut["table"]] == [[20], [20]]


def test_comparison_bench_trains_the_mode_model_on_scripted_games_with_the_chosen_reward_head(tmp_path, monkeypatch):
    """--scripted-games and --reward-head reach the environment model of the chain, and I2A imagines with it."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("i2a_vs_a2c")
    argv = ["i2a_vs_a2c.py", "--quick", "--modes", "hunt", "--seeds", "1", "--agents", "i2a"]
    options = [
        "--scripted-games",
        "1",
        "--reward-head",
        "pooled",
        "--work",
        str(tmp_path),
        "--out",
        str(tmp_path / "t"),
    ]
    monkeypatch.setattr(sys, "argv", [*argv, *options])
    bench.main()
    model_config = json.loads((tmp_path / "envmodel_hunt_s1" / "config.json").read_text())
    assert (model_config["scripted_games"], model_config["reward_head"]) == (1, "pooled")
    record = json.loads((tmp_path / "t.json").read_text())
    assert [(r["agent"], r["seeds"]) for r in record["table"]] == [("A2C", [1]), ("I2A depth 1", [1])]
    assert (record["settings"]["scripted_games"], record["settings"]["reward_head"]) == (1, "pooled")
