"""Nothing lost, nothing half-written: the scripts under signals, divergence, full disks, bad checkpoints, reused
run directories and absurd settings. Each fault is injected for real (a signal to a running script, a model that
diverges, a write that fails) and the files are checked afterwards."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time

from common import runtime
from common.runtime import (
    Diverged,
    RunDir,
    UsageError,
    atomic_write,
    cli,
    load_checkpoint,
    publish_checkpoint,
    save_checkpoint,
)

import pytest
import torch

from tests.conftest import ROOT, assert_one_line_error, load_script, run_cli, run_script

a2c = load_script("Chapter_14_Imagine_A2C.py")
img = load_script("Chapter_14_Imagination.py")
i2a = load_script("Chapter_14_I2A.py")
dqn = load_script("Chapter_14_wo_HER.py")
her = load_script("Chapter_14_HER.py")
learn = load_script("Chapter_14_learn.py")
msgd = load_script("Chapter_14_MetaSGD-VPG.py")

SHAPE, ACTIONS = (3, 15, 19), 5


def no_temporary_files(*folders) -> None:
    left = [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert left == [], left


def every_file_parses(folder) -> None:
    """JSON, CSV, PNG, GIF and checkpoints in `folder` are whole."""
    from PIL import Image

    for path in folder.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            rows = list(csv.DictReader(path.open()))
            assert all(None not in row.values() for row in rows), path
        elif path.suffix in (".png", ".gif"):
            Image.open(path).verify()
        elif path.is_file():
            assert isinstance(torch.load(path, weights_only=True), dict), path


def start(script: str, *args: str, cwd) -> tuple[subprocess.Popen, object]:
    logs = cwd / "stderr.txt"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=logs.open("w"),
        env=dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal would have it
        start_new_session=True,  # its own process group, which a terminal's Ctrl+C reaches whole
    )
    return process, logs


def wait_for(path, process, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert path.exists(), f"{path} never appeared"


# ------------------------------------------------------------------------------------------------------------------
# Signals: one line, the right exit status, what was learnt so far in the run directory, shared copy untouched
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_each_signal_has_its_exit_status_and_one_line(signum, status, capsys):
    def main(config):
        raise runtime.Interrupted(signum)

    with pytest.raises(SystemExit) as exit_info:
        cli(main, dqn.Config, argv=[])
    assert exit_info.value.code == status
    assert f"interrupted ({signal.Signals(signum).name})" in capsys.readouterr().err.strip().splitlines()[-1]


def test_ctrl_c_mid_run_keeps_the_model_so_far_and_the_workers_stay_quiet(tmp_path):
    """Ctrl+C reaches every process of the terminal's group: the workers leave it to the main process, which saves
    what was learnt so far in its run directory, writes an interrupted summary and leaves the shared copy alone.
    (SIGTERM is tested the same way end to end on HER: tests/test_her_scripts.py.)"""
    run_dir, shared = tmp_path / "run", tmp_path / "checkpoints"
    shared.mkdir()
    save_checkpoint(a2c.ActorCritic(SHAPE, ACTIONS).state_dict(), shared / "actor_critic_regular")
    before = (shared / "actor_critic_regular").read_bytes()
    process, logs = start(
        "Chapter_14_Imagine_A2C.py",
        *("--num-updates", "1000000", "--num-envs", "3", "--vec-env", "subproc", "--log-every", "5"),
        *("--device", "cpu", "--gif-frames", "0", "--run-dir", str(run_dir), "--checkpoint-dir", str(shared)),
        cwd=tmp_path,
    )
    try:
        wait_for(run_dir / "metrics.csv", process)
        time.sleep(0.5)
        subprocess.run(["pkill", "-INT", "-g", str(process.pid)], check=False)  # the whole group, like a terminal
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    err = logs.read_text()
    lines = err.strip().splitlines()
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert "interrupted (SIGINT)" in lines[-1] and str(run_dir) in lines[-1]
    no_temporary_files(run_dir, shared)
    every_file_parses(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["updates"] > 0
    model = a2c.ActorCritic(SHAPE, ACTIONS)
    model.load_state_dict(torch.load(run_dir / "actor_critic_regular", weights_only=True))  # a loadable model
    assert (shared / "actor_critic_regular").read_bytes() == before  # the shared copy is untouched


# ------------------------------------------------------------------------------------------------------------------
# Divergence, shared checkpoints
# ------------------------------------------------------------------------------------------------------------------


def test_a_diverging_run_stops_in_one_line_and_leaves_the_shared_checkpoint_alone(tmp_path):
    shared = tmp_path / "checkpoints"
    shared.mkdir()
    save_checkpoint(a2c.ActorCritic(SHAPE, ACTIONS).state_dict(), shared / "actor_critic_regular")
    before = (shared / "actor_critic_regular").read_bytes()
    result = run_cli(  # the command line in this process: the same messages and exit status, no interpreter to start
        "Chapter_14_Imagine_A2C.py",
        *("--lr", "1e12", "--max-grad-norm", "1e12", "--num-updates", "300", "--num-envs", "2", "--log-every", "5"),
        *("--device", "cpu", "--run-dir", str(tmp_path / "run"), "--checkpoint-dir", str(shared)),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]  # after the progress bar, one line says what happened
    assert "stopped:" in last and "diverged" in last and "--lr" in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert (shared / "actor_critic_regular").read_bytes() == before
    assert sorted(p.name for p in shared.iterdir()) == ["actor_critic_regular"]
    every_file_parses(tmp_path / "run")


def test_publishing_keeps_the_previous_checkpoint_and_says_so(tmp_path, capsys):
    path = tmp_path / "actor_critic_regular"
    first, second = a2c.ActorCritic(SHAPE, ACTIONS).state_dict(), a2c.ActorCritic(SHAPE, ACTIONS).state_dict()
    publish_checkpoint(first, path, script="Chapter_14_Imagine_A2C.py", trained="30000 updates", result="return 64.0")
    publish_checkpoint(second, path, script="Chapter_14_Imagine_A2C.py", trained="5 updates", result="return 3.0")
    out = capsys.readouterr().out
    assert "actor_critic_regular.previous" in out and "30000 updates" in out  # what replaced what, on screen
    assert torch.equal(torch.load(path, weights_only=True)["actor.weight"], second["actor.weight"])
    assert torch.equal(
        torch.load(tmp_path / "actor_critic_regular.previous", weights_only=True)["actor.weight"], first["actor.weight"]
    )
    assert json.loads((tmp_path / "actor_critic_regular.json").read_text())["trained"] == "5 updates"
    assert json.loads((tmp_path / "actor_critic_regular.previous.json").read_text())["trained"] == "30000 updates"
    load_checkpoint(path)
    out = capsys.readouterr().out
    assert "loaded" in out and "5 updates" in out  # the next script says which checkpoint it took
    no_temporary_files(tmp_path)


def test_a_model_with_nan_is_never_published_nor_loaded(tmp_path):
    state = a2c.ActorCritic(SHAPE, ACTIONS).state_dict()
    state["actor.bias"][0] = float("nan")
    with pytest.raises(Diverged):
        publish_checkpoint(state, tmp_path / "actor_critic_regular", script="x")
    assert list(tmp_path.iterdir()) == []
    save_checkpoint(state, tmp_path / "nan_model")
    with pytest.raises(UsageError, match="NaN or infinite"):
        load_checkpoint(tmp_path / "nan_model")


def test_i2a_refuses_a_nan_environment_model_in_one_line(tmp_path):
    model = img.new_env_model("regular", torch.device("cpu"))
    state = model.state_dict()
    state["image_fc.weight"][0, 0] = float("inf")
    save_checkpoint(state, tmp_path / "env_model")
    result = run_cli(
        "Chapter_14_I2A.py",
        "--env-model",
        str(tmp_path / "env_model"),
        "--run-dir",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert_one_line_error(result, "NaN or infinite")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("what", ["a2c", "folder"])
def test_a_wrong_file_as_env_model_says_what_it_is(tmp_path, what):
    path = tmp_path / "model"
    if what == "a2c":
        save_checkpoint(a2c.ActorCritic(SHAPE, ACTIONS).state_dict(), path)
        message = "is not an environment model"
    else:
        path.mkdir()
        message = "is a folder, not a checkpoint file"
    with pytest.raises(UsageError, match=message):
        img.load_env_model(path, "regular", torch.device("cpu"))


def test_a_missing_explicit_path_says_so_rather_than_train_one(tmp_path):
    with pytest.raises(UsageError, match="not found. Check the path given to --actor-critic") as error:
        img.load_actor_critic(img.Config(actor_critic=str(tmp_path / "nope")), torch.device("cpu"))
    assert "Train one" not in str(error.value)


# ------------------------------------------------------------------------------------------------------------------
# Disks and run directories
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_write_leaves_no_partial_file_and_names_the_path(tmp_path, code):
    (tmp_path / "summary.json").write_text('{"old": true}')

    def write(f):
        f.write('{"half": ')
        raise OSError(code, "simulated")

    with pytest.raises(OSError) as error:
        atomic_write(tmp_path / "summary.json", write)
    assert error.value.errno == code and error.value.filename == str(tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text()) == {"old": True}  # the old file, whole
    no_temporary_files(tmp_path)


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path):
    """Ctrl+C or SIGTERM while a file is written (the final writes of a run): the old file stays, no temporary."""
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")

    def write(f):
        f.write("epoch\n1\n2")
        raise runtime.Interrupted(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "metrics.csv", write)
    assert (tmp_path / "metrics.csv").read_text() == "epoch\n1\n"
    no_temporary_files(tmp_path)


def test_a_signal_while_the_temporary_file_is_created_leaves_no_temporary_file(tmp_path, monkeypatch):
    """SIGTERM delivered just after mkstemp made the temporary file (the window a test run once hit): the file is
    written whole, then the run stops; no `.tmp` is left. Without holding the signal, the file stayed behind."""
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")
    real_mkstemp = runtime.tempfile.mkstemp

    def mkstemp_then_signal(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler at the next bytecode: still in here
        return made

    old_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(runtime.tempfile, "mkstemp", mkstemp_then_signal)
    try:
        runtime.catch_signals()
        with pytest.raises(runtime.Interrupted):
            atomic_write(tmp_path / "metrics.csv", lambda f: f.write("epoch\n1\n2\n"))
    finally:
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)
    assert (tmp_path / "metrics.csv").read_text() == "epoch\n1\n2\n"  # written whole before stopping
    no_temporary_files(tmp_path)


def test_cli_reports_a_full_disk_in_one_line(capsys):
    def main(config):
        raise OSError(errno.ENOSPC, "No space left on device", "/some/run/summary.json")

    with pytest.raises(SystemExit) as exit_info:
        cli(main, dqn.Config, argv=[])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/some/run/summary.json" in err[0] and "No space left" in err[0]


def test_a_reused_run_dir_is_refused_unless_overwrite(tmp_path):
    config = dqn.Config(run_dir=str(tmp_path / "run"), device="cpu")
    RunDir("toy", config).log(epoch=1)
    (tmp_path / "run" / "episode.gif").write_bytes(b"GIF89a")  # a file of the earlier run
    with pytest.raises(UsageError, match="holds an earlier run"):
        RunDir("toy", config)
    RunDir("toy", dqn.Config(run_dir=str(tmp_path / "run"), device="cpu", overwrite=True))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]  # emptied first


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not a run's"):
        RunDir("toy", dqn.Config(run_dir=str(tmp_path), overwrite=True))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_unwritable_checkpoint_dir_is_found_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    result = run_cli(
        "Chapter_14_Imagine_A2C.py",
        "--checkpoint-dir",
        str(tmp_path / "file"),
        "--run-dir",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert_one_line_error(result, "--checkpoint-dir")
    assert not (tmp_path / "run").exists()


def test_an_unusable_run_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    result = run_cli("Chapter_14_wo_HER.py", "--run-dir", str(tmp_path / "file" / "run"), cwd=tmp_path)
    assert_one_line_error(result, "--run-dir")


# ------------------------------------------------------------------------------------------------------------------
# Absurd settings: refused before anything runs (in-process: fast), and through the command line for a few
# ------------------------------------------------------------------------------------------------------------------

BAD = [
    (a2c.Config, dict(eps=-1.0), "--eps must be positive"),
    (a2c.Config, dict(alpha=float("nan")), "--alpha must be a finite number"),
    (a2c.Config, dict(max_grad_norm=float("nan")), "--max-grad-norm must be a finite number"),
    (a2c.Config, dict(entropy_coef=float("nan")), "--entropy-coef must be a finite number"),
    (a2c.Config, dict(value_loss_coef=-1.0), "--value-loss-coef must be >= 0"),
    (a2c.Config, dict(lr=float("inf")), "--lr must be a finite number"),
    (a2c.Config, dict(seed=10**12), "--seed 1000000000000 is out of range"),
    (a2c.Config, dict(threads=10**12), "--threads"),
    (i2a.Config, dict(distil_coef=float("nan")), "--distil-coef must be a finite number"),
    (i2a.Config, dict(bf16="maybe"), "--bf16 'maybe' is unknown"),
    (img.Config, dict(reward_coef=float("inf")), "--reward-coef must be a finite number"),
    (img.Config, dict(lr=-1.0), "--lr must be positive"),
    (dqn.Config, dict(buffer_size=10, batch_size=128), "--batch-size 128 is larger than --buffer-size 10"),
    (dqn.Config, dict(buffer_size=10**12), "--buffer-size 1000000000000 is out of range"),
    (her.Config, dict(max_steps=10**12), "--max-steps 1000000000000 is out of range"),
    (her.Config, dict(max_steps=1_000_000, max_frames=1000), "never ends in budget"),
    (learn.Config, dict(maml_lr=float("nan")), "--maml-lr must be a finite number"),
    (msgd.Config, dict(adapt_bsz=10**12), "--adapt-bsz 1000000000000 is out of range"),
    (msgd.Config, dict(tau=2.0), "--tau must be in [0, 1]"),
]


@pytest.mark.parametrize("config, values, message", BAD, ids=[f"{c.__module__}-{m[:25]}" for c, _, m in BAD])
def test_absurd_values_are_refused(config, values, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config(**values)


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("Chapter_14_Imagine_A2C.py", ["--num-envs", "1000000"], "needs about"),
        ("Chapter_14_wo_HER.py", ["--buffer-size", "2000000000", "--num-bits", "50"], "needs about"),
        ("Chapter_14_I2A.py", ["--alpha", "nan"], "--alpha must be a finite number"),
        ("Chapter_14_wo_HER.py", ["--num", "5"], "unrecognized arguments: --num"),
    ],
)
def test_absurd_values_through_the_command_line(tmp_path, script, args, message):
    run = run_script if "--num" in args else run_cli  # one through a real interpreter, the others in this process
    result = run(script, *args, "--device", "cpu", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()
    assert not (runtime.REPO / "runs" / "nothing").exists()
