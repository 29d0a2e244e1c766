"""configs/: one YAML per experiment, each the one place of its settings, read by make, the recipe and jobs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shadownet import config
from shadownet.cloud import jobs

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_config_says_what_it_is_for_and_loads(path):
    assert path.read_text().startswith("# "), f"{path.name}: open with a comment saying what it is for"
    loaded = config.load(path)
    assert loaded.to_dict().items() >= {k: config.coerce(k, v) for k, v in config.hyperparameters(path).items()}.items()


def test_the_experiments_are_there():
    assert {p.stem for p in CONFIGS} == {"demo", "recipe", "cloud", "pretrain"}
    # The checkout's file (editable install) or its copy in the package (wheel, image): the same text.
    assert config.experiment("cloud").read_text() == (REPO / "configs" / "cloud.yaml").read_text()


def test_job_specs_take_their_settings_from_the_cloud_config():
    spec = json.loads(jobs.render("sagemaker"))
    assert spec["HyperParameters"] == config.hyperparameters(REPO / "configs" / "cloud.yaml")
    overridden = json.loads(jobs.render("sagemaker", ["hp.train_steps=7"]))["HyperParameters"]
    assert overridden["train_steps"] == "7" and overridden["model"] == spec["HyperParameters"]["model"]


def test_make_and_the_recipe_repeat_no_setting():
    # Settings are typed in configs/ only: the Makefile and the recipe pass --config, not the values.
    flags = {f"--{key.replace('_', '-')}" for key in config.field_types()}
    for name in ("Makefile", "benchmarks/recipe.sh"):
        lines = (REPO / name).read_text().replace("\\\n", " ").splitlines()  # continuations joined
        commands = [line for line in lines if re.search(r"\btrain --tfrecords-dir\b", line)]
        assert commands and all("--config" in line for line in commands), name
        used = sorted({flag for line in commands for flag in flags if re.search(rf"{re.escape(flag)}(?![\w-])", line)})
        assert used == [], (name, used)
    overrides = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("OVERRIDES ="))
    assert "--model $(MODEL)" in overrides and "--train-steps $(TRAIN_STEPS)" in overrides  # only when set


def test_hyperparameters_of_a_config_as_sagemaker_passes_them(tmp_path):
    out = subprocess.run([sys.executable, "-m", "shadownet.config", str(REPO / "configs" / "demo.yaml"),
                          "train_steps=6"], capture_output=True, text=True, check=True).stdout
    values = json.loads(out)
    assert values["train_steps"] == "6" and all(isinstance(v, str) for v in values.values())
    assert config.load(None, platform=values).train_steps == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("# bad\nmodel: resnet\n")
    failed = subprocess.run([sys.executable, "-m", "shadownet.config", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and "model must be one of shadownet, shadownet_small" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_settings_table_of_training_md_is_the_one_config_generates():
    page = (REPO / "docs" / "training.md").read_text()
    assert config.with_settings_table(page) == page, "docs/training.md's settings table is stale: run `make docs`"
    table = config.settings_table()
    for field in config.fields(config.TrainConfig):  # every setting, with its default and its description
        row = next(line for line in table.splitlines() if line.startswith(f"| `{field.name}` |"))
        assert config.HELP[field.name] in row
    assert "| `optimizer` | `adam` | `adam`, `adadelta` |" in table
    assert "| `augment` | true | bool |" in table and "| `learning_rate` | 0.001 | float |" in table

