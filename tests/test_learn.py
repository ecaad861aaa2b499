"""Chapter_14_learn.py: MAML on few-shot MNIST (tasks, adaptation, meta-test, command line, bad input)."""

from __future__ import annotations

import json
import random

import learn2learn as l2l
import pytest
import torch
import torch.nn as nn

from bench.mnist_files import write_mnist
from tests.conftest import assert_one_line_error, load_script, run_cli, run_script

learn = load_script("Chapter_14_learn.py")


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    write_mnist(root, {True: 12, False: 6})
    return root


def test_mnist_files_load_through_torchvision(mnist_dir):
    images, labels = learn.load_mnist(str(mnist_dir), train=True)
    assert images.shape == (120, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist().count(3) == 12
    assert (
        images.min() >= -0.1307 / 0.3081 - 1e-4 and images.max() <= (1 - 0.1307) / 0.3081 + 1e-4
    )  # the book's normalisation
    test_images, _ = learn.load_mnist(str(mnist_dir), train=False)
    assert test_images.shape == (60, 1, 28, 28)


@pytest.mark.parametrize("ways, shots, query", [(5, 1, 1), (3, 4, 2), (10, 2, 5)])
def test_tasks_have_ways_shots_remapped_labels_and_disjoint_sets(mnist_dir, ways, shots, query):
    _, labels = learn.load_mnist(str(mnist_dir), train=True)
    sampler = learn.TaskSampler(labels, ways, shots, query, "training")
    random.seed(0)
    for _ in range(20):
        adapt_index, adapt_labels, eval_index, eval_labels = sampler.sample()
        assert len(adapt_index) == ways * shots and len(eval_index) == ways * query  # --shots really changes the count
        assert sorted(set(adapt_labels.tolist())) == list(range(ways)) == sorted(set(eval_labels.tolist()))
        assert set(adapt_index.tolist()).isdisjoint(eval_index.tolist())
        assert len(set(adapt_index.tolist())) == ways * shots
        # one remapping for both sets: the same class keeps the same label
        original = {int(labels[i]): int(label) for i, label in zip(adapt_index, adapt_labels)}
        assert all(original[int(labels[i])] == int(label) for i, label in zip(eval_index, eval_labels))
        assert torch.bincount(adapt_labels).tolist() == [shots] * ways


def test_tasks_reproducible_under_a_seed(mnist_dir):
    _, labels = learn.load_mnist(str(mnist_dir), train=True)
    sampler = learn.TaskSampler(labels, 5, 1, 1, "training")
    first = learn.fixed_tasks(sampler, 5, seed=7, device=torch.device("cpu"))
    second = learn.fixed_tasks(sampler, 5, seed=7, device=torch.device("cpu"))
    other = learn.fixed_tasks(sampler, 5, seed=8, device=torch.device("cpu"))
    same = lambda a, b: all(torch.equal(x, y) for s, t in zip(a, b) for x, y in zip(s, t))  # noqa: E731
    assert same(first, second) and not same(first, other)


def test_too_many_ways_or_shots_is_a_usage_error(mnist_dir):
    _, labels = learn.load_mnist(str(mnist_dir), train=True)
    with pytest.raises(learn.UsageError, match="only 10 classes"):
        learn.TaskSampler(labels, 11, 1, 1, "training")
    with pytest.raises(learn.UsageError, match="only 12 images"):
        learn.TaskSampler(labels, 5, 10, 3, "training")


def test_adaptation_lowers_the_query_loss_on_a_synthetic_task_family():
    """Tasks: each class is a random prototype image plus noise. A few steps on the support set must lower the
    loss on the query set of the same task, compared with the unadapted model."""
    torch.manual_seed(0)
    model = learn.Net(5)
    meta_model = l2l.algorithms.MAML(model, lr=0.05)
    loss_func = nn.NLLLoss(reduction="sum")
    improved = []
    for _ in range(10):
        prototypes = torch.randn(5, 1, 28, 28)
        support = prototypes + 0.3 * torch.randn(5, 1, 28, 28)
        query = prototypes + 0.3 * torch.randn(5, 1, 28, 28)
        labels = torch.arange(5)
        before, _ = learn.compute_loss(query, labels, meta_model, loss_func)
        learner = learn.adapt(meta_model.clone(), support, labels, loss_func, steps=5)
        after, _ = learn.compute_loss(query, labels, learner, loss_func)
        improved.append(after.item() < before.item())
    assert all(improved)


def test_meta_step_reaches_the_meta_model_through_adaptation():
    torch.manual_seed(0)
    model = learn.Net(3)
    meta_model = l2l.algorithms.MAML(model, lr=0.01)
    loss_func = nn.NLLLoss(reduction="sum")
    x, y = torch.randn(3, 1, 28, 28), torch.arange(3)
    learner = learn.adapt(meta_model.clone(), x, y, loss_func, steps=2)
    error, _ = learn.compute_loss(x, y, learner, loss_func)
    error.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_learning_on_digits_beats_chance(tmp_path):
    """A fixed-seed short run on the offline digits: 5-way 1-shot, chance is 0.20."""
    summary = learn.main(
        learn.Config(
            dataset="digits", iterations=30, tps=8, eval_every=0, eval_tasks=50, device="cpu", run_dir=str(tmp_path)
        )
    )
    assert summary["meta_test_accuracy"] >= 0.5
    assert summary["meta_test_accuracy_before_adaptation"] < 0.3


def test_cli_smoke_on_mnist_files(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_script(
        "Chapter_14_learn.py",
        "--data-dir",
        str(mnist_dir),
        "--iterations",
        "4",
        "--tps",
        "2",
        "--eval-every",
        "2",
        "--eval-tasks",
        "10",
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
    )
    assert result.returncode == 0, result.stderr
    assert "meta-test accuracy" in result.stdout.strip().splitlines()[-1]
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        "config.json",
        "learning_curve.png",
        "meta_model.pt",
        "meta_test_task.png",
        "metrics.csv",
        "summary.json",
    ]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "meta_test_accuracy",
        "meta_test_ci95",
        "meta_test_accuracy_before_adaptation",
        "iterations",
        "seconds",
    ):
        assert key in summary
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and "meta_test_ci95" in rows[0]
    state = torch.load(run_dir / "meta_model.pt", weights_only=True)
    assert state["fc2.weight"].shape == (5, 500)


def test_cli_smoke_digits(tmp_path):
    result = run_cli(
        "Chapter_14_learn.py",
        "--dataset",
        "digits",
        "--iterations",
        "2",
        "--tps",
        "2",
        "--eval-tasks",
        "5",
        "--ways",
        "3",
        "--shots",
        "2",
        "--device",
        "cpu",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["ways"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ways", "11"], "--ways 11: the training split has only 10 classes"),
        (["--shots", "0"], "--shots must be at least 1"),
        (["--fas", "-1"], "--fas must be >= 0"),
        (["--dataset", "omniglot"], "--dataset 'omniglot' is unknown"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path, mnist_dir):
    result = run_cli(
        "Chapter_14_learn.py", "--data-dir", str(mnist_dir), *args, "--run-dir", str(tmp_path / "run"), cwd=tmp_path
    )
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    result = run_cli(
        "Chapter_14_learn.py", "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"), cwd=tmp_path
    )
    assert_one_line_error(result, "is a file: give a directory")
    assert not (tmp_path / "run").exists()


def test_mnist_that_cannot_be_downloaded(tmp_path, monkeypatch):
    """No MNIST files and no way to download them: one line naming the folder and --dataset digits."""
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(learn.UsageError, match=r"MNIST is not in .*raw and could not be downloaded.*--dataset digits"):
        learn.load_mnist(str(tmp_path / "empty"), train=True)
    assert not (tmp_path / "empty").exists()  # no empty data/MNIST/raw left behind


def test_labels_are_given_to_classes_at_random_in_each_task(mnist_dir):
    """No fixed class-to-label mapping the meta-model could memorise instead of adapting."""
    _, labels = learn.load_mnist(str(mnist_dir), train=True)
    sampler = learn.TaskSampler(labels, 5, 1, 1, "training")
    random.seed(0)
    seen = {}
    for _ in range(200):
        adapt_index, adapt_labels, _, _ = sampler.sample()
        for i, label in zip(adapt_index.tolist(), adapt_labels.tolist()):
            seen.setdefault(int(labels[i]), set()).add(label)
    assert all(len(given) == 5 for given in seen.values())  # every digit got every label at some point
