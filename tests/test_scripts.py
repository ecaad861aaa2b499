"""What every script of the chapter promises the reader: every hyperparameter documented on one line, the book's
code before the plumbing, nothing that needs the project's private reference folder."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys

from common.options import build_parser, description_of, field_comments, options_parser, source_options

import pytest

from tests.conftest import ROOT, load_script

SCRIPTS = sorted(p.name for p in ROOT.glob("Chapter_14_*.py"))

# The book's pieces, in the order the chapter shows them, and plumbing that must come after them.
BOOK_FIRST = {
    "Chapter_14_learn.py": (["Net", "compute_loss", "main"], ["load_mnist", "TaskSampler", "LabelsOnly"]),
    "Chapter_14_MetaSGD-VPG.py": (
        ["DiagNormalPolicy", "compute_advantages", "maml_a2c_loss", "main"],
        ["Particles2DBatch", "LockstepRunner", "task_sampler"],
    ),
    "Chapter_14_wo_HER.py": (["Env", "Model", "ReplayBuffer", "get_action", "compute_td_error"], []),
    "Chapter_14_Imagine_A2C.py": (["OnPolicy", "ActorCritic", "main"], []),
    "Chapter_14_Imagination.py": (
        ["BasicBlock", "EnvModel", "play_games", "pix_to_target", "target_to_pix", "rewards_to_target", "main"],
        ["load_env_model", "one_step_scores", "open_loop_scores"],
    ),
    "Chapter_14_I2A.py": (["I2A", "ImaginationCore", "RolloutEncoder", "main"], []),
}


def top_level_names(script: str) -> list[str]:
    tree = ast.parse((ROOT / script).read_text())
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


def test_seven_scripts():
    assert len(SCRIPTS) == 7, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_hyperparameter_has_its_one_line_comment(script):
    """The comment on a field's line is its --help text (a formatter that wraps the line would lose it)."""
    config = load_script(script).Config
    comments = field_comments(config)
    assert [f.name for f in dataclasses.fields(config) if not comments.get(f.name)] == []


@pytest.mark.parametrize("script", sorted(BOOK_FIRST))
def test_the_books_code_comes_before_the_plumbing(script):
    names = top_level_names(script)
    book, plumbing = BOOK_FIRST[script]
    positions = [names.index(name) for name in book]
    assert positions == sorted(positions), (book, names)  # the chapter's order
    assert all(names.index(name) > positions[-1] for name in plumbing), names
    assert names[0] == "Config"


def test_the_product_never_names_the_private_reference_folder():
    product = [*ROOT.glob("Chapter_14_*.py"), *ROOT.glob("common/*.py"), *ROOT.glob("bench/*.py"), ROOT / "README.md"]
    assert [p.name for p in product if "../shared" in p.read_text() or '"shared"' in p.read_text()] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_fast_help_is_the_scripts_own_help(script, monkeypatch):
    """`--help` is answered from the source before torch loads (common/options.py); it must be the help that the
    script's own parser prints, option for option."""
    module = load_script(script)
    monkeypatch.setenv("COLUMNS", "100")
    own = build_parser(module.Config, description_of(module.__doc__), script).format_help()
    fast = options_parser(source_options(ROOT / script, "Config"), description_of(module.__doc__), script)
    assert fast.format_help() == own
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout == own
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "numpy" not in imported and "torch" not in imported  # answered before the heavy imports


def test_headline_seeds_record_names_each_runs_cpu(tmp_path, monkeypatch, capsys):
    """bench/headline_seeds.py --no-run: a run in <work> names the CPU it ran on (its .machine.json), a row kept from
    an earlier record names that record's machine, and the mean +- CI covers both."""
    import importlib
    import json
    import sys

    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("headline_seeds")
    (tmp_path / "a2c_s3").mkdir()
    (tmp_path / "a2c_s3" / "summary.json").write_text(json.dumps(dict(mean_return_last_100=66.7, seconds=300)))
    (tmp_path / "a2c_s3.machine.json").write_text(json.dumps(dict(cpu="Intel Xeon (AVX-512, native bfloat16)")))
    earlier = dict(
        machine=dict(cpu="AMD EPYC (AVX-512, native bfloat16)"),
        runs=[dict(headline="a2c", seed=s, mean_return_last_100=v) for s, v in ((1, 69.9), (2, 75.5), (3, 68.0))],
    )
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    argv = [
        "--only",
        "a2c",
        "--seeds",
        "3",
        "--no-run",
        "--work",
        str(tmp_path),
        "--keep",
        str(tmp_path / "earlier.json"),
    ]
    monkeypatch.setattr(sys, "argv", ["headline_seeds.py", *argv, "--out", str(tmp_path / "out.json")])
    bench.main()
    capsys.readouterr()
    record = json.loads((tmp_path / "out.json").read_text())
    assert [(r["seed"], r["mean_return_last_100"], r["cpu"].split()[0]) for r in record["runs"]] == [
        (3, 66.7, "Intel"),
        (1, 69.9, "AMD"),
        (2, 75.5, "AMD"),
    ]
    assert record["results"]["a2c"]["seeds"] == [1, 2, 3]
    assert record["results"]["a2c"]["mean_return_last_100"]["values"] == [69.9, 75.5, 66.7]
