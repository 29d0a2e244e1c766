"""The line between the wings: data/ and cloud/ (and the root modules) run where TensorFlow cannot be imported.

The generation image installs no TensorFlow; this holds that boundary without Docker, in a process where
``import tensorflow`` and ``import keras`` fail.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import shadownet
from shadownet import choices

PACKAGE = Path(shadownet.__file__).parent
ROOT_MODULES = sorted(f"shadownet.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)]) if not m.ispkg)


def modules_under(package: str, folder: Path) -> list[str]:
    """Every module in ``folder``, its subpackages' modules included (data/pages/), found on disk, none imported."""
    found = []
    for m in pkgutil.iter_modules([str(folder)]):
        found.append(f"{package}.{m.name}")
        if m.ispkg:
            found += modules_under(f"{package}.{m.name}", folder / m.name)
    return found


WING_MODULES = sorted(m for wing in ("data", "cloud") for m in modules_under(f"shadownet.{wing}", PACKAGE / wing))
# The detector's numpy parts, which evaluation, predict and the page pipeline share without TensorFlow.
DETECTION_NUMPY_MODULES = [f"shadownet.learn.detection.{name}" for name in ("hmean", "targets", "postprocess")]

# Run in a fresh interpreter: a finder first on sys.meta_path refuses TensorFlow and Keras.
SCRIPT = textwrap.dedent("""
    import importlib, json, sys
    from pathlib import Path

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tensorboard"):
                raise ImportError(f"{name} is not installed here (test_boundary)")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    modules, work = json.loads(sys.argv[1]), Path(sys.argv[2])
    for name in modules:
        importlib.import_module(name)
    from shadownet import cli

    data, records = work / "data", work / "records"
    steps = [
        ["synth", "--out", str(data), "--count", "40", "--seed", "3", "--workers", "2"],
        ["charset", "build", "--dataset-dir", str(data), "--out", str(work / "charset")],
        ["validate", "--dataset-dir", str(data), "--workers", "2"],
        ["tfrecords", "--dataset-dir", str(data), "--save-dir", str(records), "--workers", "2"],
    ]
    codes = [cli.main(step) for step in steps]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    print(json.dumps({"codes": codes, "loaded": loaded}))
""")


def test_every_module_is_in_a_wing():
    assert ROOT_MODULES and WING_MODULES
    learn = [m.name for m in pkgutil.iter_modules([str(PACKAGE / "learn")])]
    assert {"train", "run_dir", "read_records", "export", "predict"} <= set(learn)
    assert {"shadownet.data.write_records", "shadownet.data.record_format", "shadownet.data.synth",
            "shadownet.cloud.platforms", "shadownet.cloud.storage", "shadownet.cloud.jobs",
            "shadownet.data.pages.polygons", "shadownet.data.pages.annotations"} <= set(WING_MODULES)


def test_data_and_cloud_import_and_run_without_tensorflow(tmp_path):
    modules = ROOT_MODULES + WING_MODULES + DETECTION_NUMPY_MODULES
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(modules), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"codes": [0, 0, 0, 0], "loaded": []}
    manifest = json.loads((tmp_path / "records" / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 40
    assert (tmp_path / "charset" / "char_dict.json").is_file()
    assert len(list((tmp_path / "data" / "Train").glob("sample.txt"))) == 1


def test_learn_is_not_importable_without_tensorflow(tmp_path):
    # The boundary's other side: the check above would pass vacuously if its finder let TensorFlow through.
    script = SCRIPT.split("modules, work")[0] + "import shadownet.learn.train\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "is not installed here (test_boundary)" in result.stderr


def test_each_list_of_choices_has_one_home():
    from shadownet.config import CHOICES
    from shadownet.learn import inference, model
    from shadownet.learn.detection import model as detector

    assert tuple(model.ARCHITECTURES) + tuple(detector.DETECTORS) == choices.MODELS
    assert tuple(inference.PRECISIONS) == choices.EXPORT_PRECISIONS
    assert CHOICES["model"] is choices.MODELS and CHOICES["input_mode"] is choices.INPUT_MODES


def test_the_readme_code_map_names_every_module_and_who_imports_cloud():
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    code_map = readme[readme.index("## Code map"):readme.index("Where to change what")]
    rows = {line.split("|")[1]: line for line in code_map.splitlines() if line.startswith("| `code/shadownet/")}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(PACKAGE)
        if relative.parent.parts:  # a wing's module: named in its wing's row
            row = next((line for key, line in rows.items() if f"code/shadownet/{relative.parent.as_posix()}/" in key),
                       "")
            assert f"`{path.name}`" in row, f"README's code map does not name {relative}"
        else:  # a top-level module: in the first column of a row
            assert any(f"{path.name}`" in key for key in rows), f"README's code map does not name {relative}"
    # cloud/ is imported by the CLI and serve/ only, as the map says; never by data/ or learn/
    for wing in ("data", "learn"):
        for path in (PACKAGE / wing).rglob("*.py"):
            assert "cloud" not in "".join(line for line in path.read_text().splitlines()
                                          if line.lstrip().startswith(("import ", "from "))), path
