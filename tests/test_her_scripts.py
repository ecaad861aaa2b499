"""Chapter_14_wo_HER.py and Chapter_14_HER.py end to end: the command line, bad input, Ctrl+C, seeds, learning."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli, run_script

SCRIPTS = ["Chapter_14_wo_HER.py", "Chapter_14_HER.py"]
TINY = ["--num-bits", "5", "--max-frames", "1500", "--cycles-per-epoch", "5", "--batch-size", "16", "--device", "cpu"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_cli_smoke(script, tmp_path):
    run_dir = tmp_path / "run"
    result = run_script(script, *TINY, "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert "greedy success rate" in last_line and str(run_dir) in last_line
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "learning_curve.png",
        "metrics.csv",
        "summary.json",
    ]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("success_rate", "mean_return", "num_bits", "frames", "seconds"):
        assert key in summary
    assert summary["num_bits"] == 5 and summary["frames"] >= 1500
    assert summary["hindsight"] == (script == "Chapter_14_HER.py")
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) >= 2 and {"success_rate", "mean_return", "td_loss", "greedy_success_rate"} <= set(rows[0])
    assert json.loads((run_dir / "config.json").read_text())["max_frames"] == 1500


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_every_hyperparameter(script):
    result = run_cli(script, "--help")
    assert result.returncode == 0
    for option in (
        "--num-bits",
        "--max-frames",
        "--batch-size",
        "--epsilon",
        "--gamma",
        "--max-steps",
        "--device",
        "--seed",
        "--run-dir",
    ):
        assert option in result.stdout
    assert ("--new-goals" in result.stdout) == (script == "Chapter_14_HER.py")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-bits", "0"], "--num-bits must be at least 1"),
        (["--batch-size", "-4"], "--batch-size must be at least 1"),
        (["--new-goals", "-1"], "--new-goals must be >= 0"),
        (["--device", "tpu"], "--device 'tpu' is not a device"),
        (["--epsilon", "1.5"], "--epsilon must be in [0, 1]"),
        (["--num-bits", "eleven"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("Chapter_14_HER.py", *args, "--run-dir", str(run_dir), cwd=tmp_path)
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_leaves_only_complete_files(tmp_path):
    """SIGTERM (a `kill`, a job scheduler) mid-training: exit status 143, the files so far, each whole. Ctrl+C is
    tested end to end on the A2C script (tests/test_faults.py)."""
    run_dir = tmp_path / "run"
    logs = tmp_path.parent / f"{tmp_path.name}-output"  # outside the run directory; files, not pipes that can fill up
    logs.mkdir()
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as error:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "Chapter_14_HER.py"),
                "--num-bits",
                "8",
                "--max-frames",
                "10000000",
                "--cycles-per-epoch",
                "1",
                "--device",
                "cpu",
                "--run-dir",
                str(run_dir),
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=error,
            text=True,
        )
        deadline = time.time() + 120
        while not (run_dir / "metrics.csv").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # well inside training: metrics.csv is being rewritten every cycle
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    err = (logs / "stderr").read_text()
    assert process.returncode == 143, err[-2000:]
    assert "interrupted (SIGTERM)" in err.strip().splitlines()[-1] and str(run_dir) in err
    names = sorted(p.name for p in run_dir.iterdir())
    # what was learnt so far, no temporary files, nothing half-written
    assert names == ["config.json", "learning_curve.png", "metrics.csv", "summary.json"], names
    json.loads((run_dir / "config.json").read_text())
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is True
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert rows and all(len(row) == len(rows[0]) and None not in row.values() for row in rows)


def test_same_seed_same_numbers(tmp_path):
    import Chapter_14_HER as her

    def run(seed, name):
        config = her.Config(
            num_bits=6, max_frames=1000, cycles_per_epoch=5, seed=seed, device="cpu", run_dir=str(tmp_path / name)
        )
        summary = her.main(config)
        metrics = (tmp_path / name / "metrics.csv").read_text().splitlines()
        drop_seconds = [",".join(line.split(",")[:-1]) for line in metrics]
        return {k: v for k, v in summary.items() if k != "seconds"}, drop_seconds

    first = run(3, "a")
    assert first == run(3, "b")
    assert first[1] != run(4, "c")[1]


def test_hindsight_learns_13_bits_where_dqn_alone_does_not(tmp_path):
    """The HER paper's point at a fixed seed and budget: 13 bits, 16,000 frames each."""
    import Chapter_14_HER as her
    import Chapter_14_wo_HER as dqn

    settings = dict(num_bits=13, max_frames=16_000, seed=1, device="cpu")
    with_her = her.main(her.Config(**settings, run_dir=str(tmp_path / "her")))
    without = dqn.main(dqn.Config(**settings, run_dir=str(tmp_path / "dqn")))
    assert with_her["success_rate"] >= 0.9
    assert without["success_rate"] <= 0.1
