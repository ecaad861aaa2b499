"""common/runtime.py: the command line, device resolution, seeding, atomic files, checkpoints, run directory."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass

from common.runtime import (
    RunConfig,
    RunDir,
    UsageError,
    atomic_write,
    build_parser,
    cli,
    keep_freed_memory,
    load_checkpoint,
    native_bf16,
    parse_config,
    require,
    resolve_bf16,
    resolve_device,
    save_checkpoint,
    seed_everything,
)

import numpy as np
import pytest
import torch


@dataclass
class ToyConfig(RunConfig):
    num_bits: int = 11  # bits in the string
    lr: float = 1e-3  # learning rate
    mode: str = "regular"  # which mode
    fast: bool = False  # go faster (about 20% when idle)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.num_bits >= 1, f"--num-bits must be at least 1, got {self.num_bits}")


def test_every_field_is_an_option_with_its_comment_as_help():
    help_text = build_parser(ToyConfig).format_help()
    for option, comment in [
        ("--num-bits", "bits in the string"),
        ("--lr", "learning rate"),
        ("--mode", "which mode"),
        ("--fast", "go faster (about 20% when idle)"),
        ("--seed", "random seed"),
        ("--device", "auto"),
        ("--run-dir", "outputs"),
    ]:
        assert option in help_text
        assert comment in help_text


def test_parse_config_types_and_defaults():
    config = parse_config(ToyConfig, ["--num-bits", "30", "--lr", "0.5", "--fast", "--device", "cpu"])
    assert config == ToyConfig(num_bits=30, lr=0.5, fast=True, device="cpu")
    assert parse_config(ToyConfig, []) == ToyConfig()


def test_out_of_range_value_is_a_usage_error():
    with pytest.raises(UsageError, match="--num-bits must be at least 1"):
        parse_config(ToyConfig, ["--num-bits", "0"])


def test_cli_bad_input_is_one_line_and_exit_2(capsys):
    calls = []
    for argv in (["--num-bits", "0"], ["--num-bits", "many"], ["--device", "gpu"], ["--no-such-option"]):
        with pytest.raises(SystemExit) as exit_info:
            cli(calls.append, ToyConfig, argv=argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "error" in err
    assert calls == []  # main never ran


def test_cli_interrupt_exits_130(capsys):
    def main(config):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        cli(main, ToyConfig, argv=[])
    assert exit_info.value.code == 130


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "CPU", ""):
        with pytest.raises(UsageError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(UsageError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_device("cuda:0").type == "cuda"


def test_seed_everything_reproduces():
    a = seed_everything(3).random(4), torch.rand(4)
    b = seed_everything(3).random(4), torch.rand(4)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def broken(f):
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_checkpoint_roundtrip_and_errors(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(model.state_dict(), tmp_path / "model")
    other = torch.nn.Linear(3, 2)
    load_checkpoint(path, other)
    assert torch.equal(other.weight, model.weight)

    with pytest.raises(UsageError, match="not found. run the trainer"):
        load_checkpoint(tmp_path / "missing", other, hint="run the trainer")
    with pytest.raises(UsageError, match="does not fit this model"):
        load_checkpoint(path, torch.nn.Linear(4, 2))
    (tmp_path / "garbage").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read"):
        load_checkpoint(tmp_path / "garbage", other)


def test_checkpoint_refuses_pickled_code(tmp_path):
    """weights_only=True: a file that would run code on load is refused, not executed."""
    path = tmp_path / "evil"
    torch.save({"weight": torch.zeros(1), "hook": subprocess.Popen}, path)
    with pytest.raises(UsageError, match="cannot be read"):
        load_checkpoint(path)


def test_run_dir_files(tmp_path):
    config = ToyConfig(run_dir=str(tmp_path / "run"))
    run = RunDir("toy", config)
    run.log(epoch=1, loss=0.5)
    run.log(epoch=2, loss=0.25, extra=1)
    summary = run.finish({"loss": 0.25}, "toy done")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["num_bits"] == 11
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines() == ["epoch,loss,extra", "1,0.5,", "2,0.25,1"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        RunDir("toy", ToyConfig(run_dir=str(tmp_path / "file")))


def test_default_run_dir_is_under_the_repositorys_runs_wherever_we_start(tmp_path, monkeypatch):
    from common import runtime

    monkeypatch.setattr(runtime, "REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)  # another folder: the default does not follow it
    first = RunDir("toy", ToyConfig())
    second = RunDir("toy", ToyConfig())
    assert first.path.parent == second.path.parent == tmp_path / "repo" / "runs" / "toy"
    assert first.path != second.path
    config = json.loads((first.path / "config.json").read_text())
    assert config["resolved"]["run_dir"] == str(first.path.resolve())


def test_run_dirs_made_at_the_same_instant_are_distinct(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from common import runtime

    monkeypatch.setattr(runtime, "REPO", tmp_path)
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: RunDir("toy", ToyConfig()).path, range(16)))
    assert len(set(paths)) == 16


def test_config_json_records_what_the_run_resolved(tmp_path):
    run = RunDir(
        "toy", ToyConfig(run_dir=str(tmp_path / "run")), device=torch.device("cpu"), checkpoint=tmp_path / "ck"
    )
    config = json.loads((run.path / "config.json").read_text())
    assert config["device"] == "auto" and config["resolved"]["device"] == "cpu"
    assert config["resolved"]["checkpoint"] == str(tmp_path / "ck")


def test_no_abbreviations_and_the_fields_own_spelling():
    assert parse_config(ToyConfig, ["--num_bits", "7"]).num_bits == 7
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--num", "7"])  # not silently --num-bits
    assert "--num_bits" not in build_parser(ToyConfig).format_help()  # the alias works, --help shows one spelling


def test_bf16_choice():
    cpu = torch.device("cpu")
    assert resolve_bf16("on", cpu) and not resolve_bf16("off", cpu)
    assert resolve_bf16("auto", cpu) == native_bf16(cpu)


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """Not mkstemp's owner-only 0600: what open() would have given under the process umask."""
    from common import runtime

    path = atomic_write(tmp_path / "f.txt", lambda f: f.write("x"))
    assert path.stat().st_mode & 0o777 == 0o666 & ~runtime._UMASK


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_is_accepted_by_glibc():
    assert keep_freed_memory() and keep_freed_memory()  # both values in glibc's range; calling twice is harmless
    x = torch.ones(4 << 20)  # 16 MB: from the heap now, not a fresh mapping
    assert float(x.sum()) == 4 << 20
