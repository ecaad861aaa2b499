"""CUDA smoke runs: each script through its command line with tiny settings on --device cuda, and the MiniPacman
chain (A2C -> environment model -> I2A) on the GPU. Skipped where torch sees no GPU (CI, the development
machine); run where one is lent."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from tests.conftest import run_script

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
HAS_L2L = importlib.util.find_spec("learn2learn") is not None and importlib.util.find_spec("cherry") is not None


def run_on_cuda(tmp_path, script: str, *args: str) -> dict:
    run_dir = tmp_path / script.removesuffix(".py")
    result = run_script(script, *args, "--device", "cuda", "--run-dir", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda"), summary
    return summary


@pytest.mark.parametrize("script", ["Chapter_14_wo_HER.py", "Chapter_14_HER.py"])
def test_bit_flipping_on_cuda(tmp_path, script):
    summary = run_on_cuda(tmp_path, script, "--num-bits", "6", "--max-frames", "3000", "--cycles-per-epoch", "5")
    assert summary["frames"] >= 3000


def test_minipacman_chain_on_cuda(tmp_path):
    checkpoints = ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    run_on_cuda(tmp_path, "Chapter_14_Imagine_A2C.py", "--num-updates", "20", "--num-envs", "4", *checkpoints)
    summary = run_on_cuda(
        tmp_path,
        "Chapter_14_Imagination.py",
        "--num-updates",
        "20",
        "--num-envs",
        "4",
        "--test-steps",
        "8",
        *checkpoints,
    )
    assert 0 <= summary["pixel_accuracy"] <= 1
    summary = run_on_cuda(
        tmp_path,
        "Chapter_14_I2A.py",
        "--num-updates",
        "6",
        "--num-envs",
        "4",
        "--log-every",
        "3",
        "--rollout-depth",
        "2",
        *checkpoints,
    )
    assert summary["bf16"] == (torch.cuda.get_device_capability() >= (8, 0))  # --bf16 auto: native from Ampere on


@pytest.mark.skipif(not HAS_L2L, reason="learn2learn and cherry are not installed here")
def test_maml_on_cuda(tmp_path):
    summary = run_on_cuda(
        tmp_path,
        "Chapter_14_learn.py",
        "--dataset",
        "digits",
        "--iterations",
        "3",
        "--tps",
        "2",
        "--eval-tasks",
        "5",
        "--eval-every",
        "0",
    )
    assert 0 <= summary["meta_test_accuracy"] <= 1


@pytest.mark.skipif(not HAS_L2L, reason="learn2learn and cherry are not installed here")
def test_metasgd_on_cuda(tmp_path):
    summary = run_on_cuda(
        tmp_path,
        "Chapter_14_MetaSGD-VPG.py",
        "--num-iterations",
        "2",
        "--meta-bsz",
        "2",
        "--adapt-bsz",
        "3",
        "--eval-tasks",
        "2",
    )
    assert "return_after_1_steps" in summary
