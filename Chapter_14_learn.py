"""MAML on few-shot MNIST with learn2learn: "Learning to learn", "Model-agnostic meta-learning" and
"Training a meta learner" in chapter 14.

A meta-model (the book's `Net`) is trained so that a few gradient steps on a handful of examples of a new
5-way task (1 image per class: "5-way 1-shot") make it classify that task's other images. Each iteration
samples `tps` tasks; for each, a clone of the meta-model (`meta_model.clone()`) adapts `fas` times on the
task's adaptation images, is evaluated on the task's evaluation images (disjoint from them), and the mean
evaluation loss over the tasks takes one Adam step on the meta-model, through the adaptation steps.

Meta-test, as the MAML paper evaluates: every `eval_every` iterations and at the end, 600 fresh tasks from the
dataset's test split, each adapted `fas` steps; we report the mean accuracy on their evaluation images with
its 95% confidence interval, and the accuracy before adaptation to show what adaptation buys. MNIST's test
split holds new images of the same ten digits as the training split (not new classes, as in Omniglot), so
this measures fast adaptation to new tasks and images, not to unseen classes.

Run it:
    python Chapter_14_learn.py                        # MNIST (downloaded into data/ when absent)
    python Chapter_14_learn.py --dataset digits       # offline: scikit-learn's 1,797 8x8 digits
    python Chapter_14_learn.py --ways 3 --shots 5 --iterations 300
    python Chapter_14_learn.py --help

Time of the default run (--dataset digits): about 17 minutes on a 2-core CPU; no GPU time measured yet.
Writes (under runs/Chapter_14_learn/<date-time>/ or --run-dir): config.json, metrics.csv (every
`log_every` iterations: loss, accuracy; meta-test accuracy, its CI and the accuracy before adaptation when
evaluated), learning_curve.png, meta_test_task.png (one meta-test task: adaptation images, evaluation images,
predictions after adaptation), meta_model.pt (the trained Net's state_dict), summary.json.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from common.runtime import (
    RunConfig,
    RunDir,
    UsageError,
    check_finite,
    check_ranges,
    cli,
    known,
    repo_path,
    require,
    require_memory,
    setup,
    tune_process,
)

import learn2learn as l2l
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


@dataclass
class Config(RunConfig):
    lr: float = 0.005  # Adam learning rate of the meta-model (the outer loop) (the book: 0.005)
    maml_lr: float = 0.01  # step size of each fast-adaptation step (the inner loop) (the book: 0.01)
    iterations: int = 1000  # meta-training iterations, one Adam step each (the book: 1000)
    ways: int = 5  # classes per task (the book: 5)
    shots: int = 1  # adaptation images per class (the book: 1)
    query: int = 0  # evaluation images per class; 0 means as many as shots (the book's split)
    tps: int = 32  # tasks per step (per iteration) (the book: 32)
    fas: int = 5  # fast adaptation steps per task (the book: 5)
    dataset: str = "mnist"  # mnist, or digits: scikit-learn's 8x8 digits upsampled to 28x28, no download
    data_dir: str = ""  # MNIST lives in <data_dir>/MNIST/raw, downloaded when absent; empty: data/ in this repository
    eval_every: int = 100  # iterations between two meta-tests on the test split (0: only at the end)
    eval_tasks: int = 600  # meta-test tasks, as in the MAML paper
    log_every: int = 10  # iterations averaged into one row of metrics.csv
    threads: int = 1  # CPU threads for torch: 1 holds up on a busy machine (docs/learn.md, speed)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.dataset in ("mnist", "digits"), f"--dataset {self.dataset!r} is unknown: use mnist or digits")
        require(self.ways >= 2, f"--ways must be at least 2, got {self.ways}")
        check_ranges(
            self,
            positive=("lr", "maml_lr"),
            non_negative=("query", "fas", "eval_every"),  # query 0: as many as shots
            at_least_1=("shots", "iterations", "tps", "eval_tasks", "log_every"),
        )
        require(not self.data_path.is_file(), f"--data-dir {self.data_dir} is a file: give a directory")

    @property
    def data_path(self) -> Path:
        return repo_path(self.data_dir, "data")

    @property
    def query_shots(self) -> int:
        return self.query or self.shots


class Net(nn.Module):
    """The book's classifier: two conv/pool layers, a 500-unit layer, `ways` log-probabilities."""

    def __init__(self, ways: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2, 2)
        x = x.view(-1, 4 * 4 * 50)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def compute_loss(x: torch.Tensor, y: torch.Tensor, learner: nn.Module, loss_func) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's compute_loss: mean loss and accuracy of `learner` on a task's images."""
    output = learner(x)
    return loss_func(output, y) / x.size(0), accuracy(output, y)


def accuracy(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (output.argmax(dim=1) == y).float().mean()


def adapt(learner, x: torch.Tensor, y: torch.Tensor, loss_func, steps: int, first_order: bool = False):
    """The fast-adaptation loop: `steps` gradient steps of the cloned learner on the adaptation images."""
    for _ in range(steps):
        train_error, _ = compute_loss(x, y, learner, loss_func)
        learner.adapt(train_error, first_order=first_order)
    return learner


def meta_step(meta_model, opt, tasks, loss_func, fas: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One meta-training iteration, the book's loop: for each task, clone the meta-model, adapt the clone on
    the adaptation images, evaluate it on the evaluation images; then one Adam step on the mean evaluation
    loss, whose gradient flows back through the adaptation steps into the meta-model."""
    iteration_error = 0.0
    iteration_acc = 0.0
    count = 0
    for adaptation_data, adaptation_labels, evaluation_data, evaluation_labels in tasks:
        learner = adapt(meta_model.clone(), adaptation_data, adaptation_labels, loss_func, fas)
        valid_error, valid_acc = compute_loss(evaluation_data, evaluation_labels, learner, loss_func)
        iteration_error += valid_error
        iteration_acc += valid_acc
        count += 1
    iteration_error /= count
    iteration_acc /= count

    # Take the meta-learning step
    opt.zero_grad()
    iteration_error.backward()
    opt.step()
    return iteration_error.detach(), iteration_acc.detach()


def meta_test(meta_model, images, tasks, config: Config, loss_func) -> dict:
    """The MAML paper's protocol: adapt on each test task, accuracy on its evaluation images, mean and 95% CI."""
    before, after = [], []
    for adapt_index, adapt_labels, eval_index, eval_labels in tasks:
        with torch.no_grad():
            before.append(accuracy(meta_model(images[eval_index]), eval_labels))
        learner = adapt(meta_model.clone(), images[adapt_index], adapt_labels, loss_func, config.fas, first_order=True)
        with torch.no_grad():
            after.append(accuracy(learner(images[eval_index]), eval_labels))
    after_t = torch.stack(after).cpu()
    return dict(
        meta_test_accuracy=float(after_t.mean()),
        meta_test_ci95=float(1.96 * after_t.std() / math.sqrt(len(after_t))),
        meta_test_accuracy_before_adaptation=float(torch.stack(before).mean()),
    )


def main(config: Config) -> dict:
    device, _ = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    torch.backends.mkldnn.enabled = False  # oneDNN convolutions are slower on 5-image batches (docs/learn.md)
    train_images, train_labels = load_split(config, train=True, device=device)
    test_images, test_labels = load_split(config, train=False, device=device)
    train_tasks = TaskSampler(train_labels, config.ways, config.shots, config.query_shots, "training")
    test_sampler = TaskSampler(test_labels, config.ways, config.shots, config.query_shots, "test")
    test_tasks = fixed_tasks(test_sampler, config.eval_tasks, seed=10**6 + config.seed, device=device)
    images = config.tps * config.ways * (config.shots + config.query_shots) * (config.fas + 1)  # in one graph
    require_memory(images * 2**20, "--tps x --ways x --shots x --fas")  # ~1 MB of activations per image
    run = RunDir("Chapter_14_learn", config, device=device, data_dir=config.data_path.resolve())

    model = Net(config.ways).to(device)
    meta_model = l2l.algorithms.MAML(model, lr=config.maml_lr)
    opt = torch.optim.Adam(meta_model.parameters(), lr=config.lr)
    loss_func = nn.NLLLoss(reduction="sum")

    start, iterations = time.perf_counter(), 0
    errors, accuracies, test = [], [], {}
    tqdm_bar = tqdm(range(1, config.iterations + 1), desc="Chapter_14_learn", unit="it", dynamic_ncols=True)
    try:
        for iteration in tqdm_bar:
            tasks = (gather(train_images, *train_tasks.sample(), device) for _ in range(config.tps))
            iteration_error, iteration_acc = meta_step(meta_model, opt, tasks, loss_func, config.fas)

            errors.append(iteration_error)
            accuracies.append(iteration_acc)
            evaluate_now = iteration == config.iterations or (config.eval_every and iteration % config.eval_every == 0)
            if evaluate_now:
                test = meta_test(meta_model, test_images, test_tasks, config, loss_func)
            if evaluate_now or iteration % config.log_every == 0:
                row = dict(
                    iteration=iteration,
                    loss=float(torch.stack(errors).mean()),
                    train_accuracy=float(torch.stack(accuracies).mean()),
                )
                if evaluate_now:
                    row.update(test)
                row["seconds"] = round(time.perf_counter() - start, 2)
                run.log(**row)
                check_finite({"loss": row["loss"]}, f"iteration {iteration}", "try a smaller --lr or --maml-lr")
                errors, accuracies = [], []
                tqdm_bar.set_postfix(
                    known(
                        loss=f"{row['loss']:.3f}",
                        acc=f"{row['train_accuracy']:.3f}",
                        test=f"{test.get('meta_test_accuracy', float('nan')):.3f}",  # after the first meta-test
                    )
                )
            iterations = iteration
            if run.checkpoint_due():  # every few minutes, the meta-model so far in the run directory
                run.save_checkpoint(model.state_dict(), "meta_model.pt")
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: keep what was learnt so far, then stop
        run.stop(error)
    seconds = time.perf_counter() - start

    run.save_checkpoint(model.state_dict(), "meta_model.pt")
    plot_learning_curve(run, config)
    if not run.stopped:
        plot_task(run, meta_model, test_images, test_tasks[0], config, loss_func)
    summary = dict(
        **test,
        iterations=iterations,
        seconds=round(seconds, 2),
        dataset=config.dataset,
        ways=config.ways,
        shots=config.shots,
        fas=config.fas,
        eval_tasks=config.eval_tasks,
        device=str(device),
        seed=config.seed,
    )
    return run.finish(
        summary,
        lambda: (
            f"Chapter_14_learn: {config.ways}-way {config.shots}-shot {config.dataset}, "
            f"{config.iterations} iterations in {seconds:.0f} s: "
            f"meta-test accuracy {test['meta_test_accuracy']:.3f} +- {test['meta_test_ci95']:.3f} after {config.fas} "
            f"steps ({test['meta_test_accuracy_before_adaptation']:.3f} before), {config.eval_tasks} tasks"
        ),
    )


# --------------------------------------------------------------------------------------------------------------
# Plumbing the book does not show: the data (every image decoded and normalised once, kept as one tensor
# on the device), task sampling, plots
# --------------------------------------------------------------------------------------------------------------


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    raw = Path(data_dir) / "MNIST" / "raw"
    present = all((raw / name).exists() or (raw / f"{name}.gz").exists() for name in MNIST_FILES)
    made = [p for p in (Path(data_dir), raw.parent, raw) if not p.exists()]  # folders a failed download leaves
    fix = f"put the four MNIST files ({', '.join(MNIST_FILES)}, .gz or not) in {raw}, or use --dataset digits"
    if not present:
        print(f"downloading MNIST into {raw} ...", flush=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            mnist = MNIST(data_dir, train=train, download=True)  # no download when the files are there
    except Exception as error:  # no internet, a proxy, a broken mirror; or damaged files
        if present:
            raise UsageError(f"the MNIST files in {raw} cannot be read ({type(error).__name__}): {fix}") from None
        for folder in reversed(made):  # leave no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UsageError(f"MNIST is not in {raw} and could not be downloaded ({type(error).__name__}): {fix}") from None
    if tuple(mnist.data.shape[1:]) != (28, 28) or len(mnist.data) != len(mnist.targets):
        raise UsageError(f"the MNIST files in {raw} hold {tuple(mnist.data.shape)} images, not 28x28 ones: {fix}")
    images = mnist.data.float().div(255).sub(0.1307).div(0.3081)  # the book's normalisation
    return images.unsqueeze(1), mnist.targets.long()


def load_digits(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 handwritten 8x8 digits, upsampled to 28x28; a fixed stratified 70/30 split."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div(16).unsqueeze(1)
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=0.3, random_state=0, stratify=digits.target
    )
    index = torch.tensor(train_index if train else test_index)
    return images[index], labels[index]


def load_split(config: Config, train: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_mnist(config.data_path, train) if config.dataset == "mnist" else load_digits(train)
    return images.to(device), labels.to(device)


class TaskSampler:
    """N-way K-shot tasks from learn2learn: a MetaDataset built from the labels and a Taskset whose first
    (and only) transform is FusedNWaysKShots. It hands out indices; the images are gathered on the device.

    Each task: `ways` classes, `shots + query` images each, labels 0..ways-1 given to the classes in a random
    order drawn for each task (Python's `random`, seeded by --seed); the first `shots`
    images of each class are the adaptation set, the other `query` the evaluation set (disjoint).
    """

    def __init__(self, labels: torch.Tensor, ways: int, shots: int, query: int, split: str):
        counts = torch.bincount(labels.cpu())
        classes = int((counts > 0).sum())
        if ways > classes:
            raise UsageError(
                f"--ways {ways}: the {split} split has only {classes} classes; use --ways {classes} or fewer"
            )
        if shots + query > int(counts[counts > 0].min()):
            raise UsageError(
                f"--shots {shots} + {query} evaluation images per class: the {split} split has only "
                f"{int(counts[counts > 0].min())} images in its smallest class"
            )
        self.ways, self.shots, self.query = ways, shots, query
        labels_list = labels.cpu().tolist()
        dataset = l2l.data.MetaDataset(LabelsOnly(labels_list), indices_to_labels=dict(enumerate(labels_list)))
        self.taskset = l2l.data.Taskset(
            dataset,
            task_transforms=[l2l.data.transforms.FusedNWaysKShots(dataset, n=ways, k=shots + query)],
            num_tasks=-1,
        )
        self.labels = labels.cpu()

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices and remapped labels: (adapt_index, adapt_labels, eval_index, eval_labels)."""
        index = torch.tensor([d.index for d in self.taskset.sample_task_description()])
        _, remapped = torch.unique(self.labels[index], return_inverse=True)  # 0..ways-1 in class order
        # A fresh random label for each class in every task (as RemapLabels(shuffle=True)): otherwise class 0
        # would always be the smallest digit of the task, and the meta-model could learn labels, not adaptation.
        remapped = torch.tensor(random.sample(range(self.ways), self.ways))[remapped]
        order = torch.argsort(remapped, stable=True)
        index = index[order].view(self.ways, self.shots + self.query)
        remapped = remapped[order].view(self.ways, self.shots + self.query)
        return (
            index[:, : self.shots].reshape(-1),
            remapped[:, : self.shots].reshape(-1),
            index[:, self.shots :].reshape(-1),
            remapped[:, self.shots :].reshape(-1),
        )


class LabelsOnly(torch.utils.data.Dataset):
    """What MetaDataset wraps: only labels (the images stay in one tensor on the device)."""

    def __init__(self, labels: list[int]):
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return i, self.labels[i]


def gather(images, adapt_index, adapt_labels, eval_index, eval_labels, device):
    """A task's images and labels, gathered from the device tensor in two indexing operations."""
    adapt_index, adapt_labels, eval_index, eval_labels = (
        t.to(device) for t in (adapt_index, adapt_labels, eval_index, eval_labels)
    )
    return images[adapt_index], adapt_labels, images[eval_index], eval_labels


def fixed_tasks(sampler: TaskSampler, count: int, seed: int, device: torch.device) -> list:
    """`count` tasks drawn once with their own seed (the same tasks at every meta-test), moved to the device."""
    state = random.getstate()
    random.seed(seed)
    tasks = [tuple(t.to(device) for t in sampler.sample()) for _ in range(count)]
    random.setstate(state)
    return tasks


def plot_learning_curve(run: RunDir, config: Config) -> None:
    import matplotlib.pyplot as plt

    rows = run.rows
    tested = [r for r in rows if "meta_test_accuracy" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot([r["iteration"] for r in rows], [r["loss"] for r in rows])
    axes[0].set(xlabel="iteration", ylabel="meta-training loss (after adaptation)")
    axes[1].plot([r["iteration"] for r in rows], [r["train_accuracy"] for r in rows], label="training tasks")
    axes[1].errorbar(
        [r["iteration"] for r in tested],
        [r["meta_test_accuracy"] for r in tested],
        yerr=[r["meta_test_ci95"] for r in tested],
        marker="o",
        capsize=3,
        label="meta-test, after adaptation",
    )
    axes[1].plot(
        [r["iteration"] for r in tested],
        [r["meta_test_accuracy_before_adaptation"] for r in tested],
        "s--",
        label="meta-test, before adaptation",
    )
    axes[1].set(xlabel="iteration", ylabel="accuracy on evaluation images", ylim=(0, 1.02))
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"MAML, {config.ways}-way {config.shots}-shot {config.dataset}, {config.fas} adaptation steps, "
        f"seed {config.seed}"
    )
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


def plot_task(run: RunDir, meta_model, images, task, config: Config, loss_func) -> None:
    """One meta-test task: its adaptation images, its evaluation images and the adapted learner's predictions."""
    import matplotlib.pyplot as plt

    adapt_index, adapt_labels, eval_index, eval_labels = task
    learner = adapt(meta_model.clone(), images[adapt_index], adapt_labels, loss_func, config.fas, first_order=True)
    with torch.no_grad():
        predicted = learner(images[eval_index]).argmax(1)
    columns = max(len(adapt_index), len(eval_index))
    fig, axes = plt.subplots(2, columns, figsize=(1.3 * columns, 3.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, (i, label) in enumerate(zip(adapt_index.tolist(), adapt_labels.tolist())):
        axes[0, j].imshow(images[i, 0].cpu(), cmap="gray")
        axes[0, j].set_title(f"class {label}", fontsize=8)
    for j, (i, label, guess) in enumerate(zip(eval_index.tolist(), eval_labels.tolist(), predicted.tolist())):
        axes[1, j].imshow(images[i, 0].cpu(), cmap="gray")
        axes[1, j].set_title(f"{label} -> {guess}", fontsize=8, color="green" if label == guess else "red")
    fig.suptitle("top: adaptation images; bottom: evaluation images, true -> predicted after adaptation", fontsize=9)
    fig.tight_layout()
    run.save_figure(fig, "meta_test_task.png")


if __name__ == "__main__":
    cli(main, Config, __doc__)
