"""Other recognisers on a dataset's test split, for ``benchmarks/accuracy.py``: the same image files.

* ``paddle``: PP-OCRv4's text recogniser (``ch_PP-OCRv4_rec_infer.onnx``, its Chinese and English dictionary)
  as the ``rapidocr-onnxruntime`` wheel ships it, on onnxruntime's CPU provider. Only its recognition step runs
  (``RapidOCR()(image, use_det=False, use_cls=False, use_rec=True)``): each test image is already a cropped
  line, as it is for shadownet.
* ``tesseract``: the ``tesseract`` binary (Tesseract 5, English data: Debian's ``tesseract-ocr``), one process
  per image, ``--psm 7`` (one text line), its default LSTM engine. Reported as skipped when not installed.

Each peer reports ``exact`` (the whole line, spaces and punctuation included), ``exact_ignoring_case_and_spaces``
(both texts NFKC-normalised, lowercased and stripped of whitespace: PP-OCRv4's dictionary answers some
punctuation in full width), ``char_error_rate`` (total edit distance / total label length, raw texts),
``images_per_sec`` (wall time of the loop over the images, the model already loaded; Tesseract's includes
starting one process per image) and a few wrong examples. No peer is trained or adapted to the set.

    python benchmarks/peers.py DATASET_DIR [--peers paddle,tesseract]   # a seed-layout dataset's test split
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

PEERS = ("paddle", "tesseract")
RAPIDOCR_VERSION = "1.4.4"  # benchmarks/requirements-peers.txt pins the same
SHOWN_ERRORS = 5


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j - 1] + (char_a != char_b), previous[j] + 1, current[j - 1] + 1))
        previous = current
    return previous[-1]


def loose(text: str) -> str:
    """NFKC-normalised (a full-width ``（`` is ``(``), lowercased, every whitespace character removed."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def score(labels: list[str], texts: list[str]) -> dict:
    """Exact-line accuracy, accuracy ignoring case and spaces, and CER of ``texts`` against ``labels``."""
    n = len(labels)
    if not n:
        return {"test_images": 0, "exact": 0.0, "exact_ignoring_case_and_spaces": 0.0, "char_error_rate": 0.0}
    pairs = list(zip(labels, texts, strict=True))
    return {
        "test_images": n,
        "exact": round(sum(label == text for label, text in pairs) / n, 6),
        "exact_ignoring_case_and_spaces": round(sum(loose(label) == loose(text) for label, text in pairs) / n, 6),
        "char_error_rate": round(sum(edit_distance(label, text) for label, text in pairs)
                                 / max(sum(len(label) for label in labels), 1), 6),
    }


def _paddle() -> tuple[str, Callable[[Path], str]] | str:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return (f"rapidocr-onnxruntime not installed (pip install --no-deps rapidocr-onnxruntime=={RAPIDOCR_VERSION}"
                ", see benchmarks/requirements-peers.txt)")
    from importlib.metadata import version

    engine = RapidOCR()

    def read(path: Path) -> str:
        result, _ = engine(str(path), use_det=False, use_cls=False, use_rec=True)
        return result[0][0] if result else ""

    return f"PP-OCRv4 recogniser (rapidocr-onnxruntime {version('rapidocr-onnxruntime')})", read


def _tesseract() -> tuple[str, Callable[[Path], str]] | str:
    binary = shutil.which("tesseract")
    if not binary:
        return "tesseract not installed (apt install tesseract-ocr)"
    found = subprocess.run([binary, "--version"], capture_output=True, text=True)
    name = (found.stdout or found.stderr).splitlines()[0].strip() if (found.stdout or found.stderr) else "tesseract"

    def read(path: Path) -> str:
        done = subprocess.run([binary, str(path), "stdout", "-l", "eng", "--psm", "7"], capture_output=True,
                              text=True)
        if done.returncode:
            raise PeerFailed(f"{path.name}: tesseract exited {done.returncode}: {done.stderr.strip()[-200:]}")
        return " ".join(done.stdout.split())  # one line: its trailing newline and form feed dropped

    return f"{name} --psm 7 -l eng", read


LOADERS = {"paddle": _paddle, "tesseract": _tesseract}


class PeerFailed(Exception):
    """A peer could not read one image: it counts as an empty answer, and the run reports how many failed."""


def run(peer: str, images: list[Path], labels: list[str]) -> dict:
    """One peer's figures on the images, or ``{"skipped": why}`` when it is not installed."""
    loaded = LOADERS[peer]()
    if isinstance(loaded, str):
        return {"skipped": loaded}
    name, read = loaded
    texts, failures = [], []
    began = time.monotonic()
    for path in images:
        try:
            texts.append(read(path))
        except PeerFailed as failure:
            texts.append("")
            failures.append(str(failure))
    seconds = time.monotonic() - began
    figures = {"engine": name, **score(labels, texts), "images_per_sec": round(len(images) / max(seconds, 1e-9), 1)}
    if failures:
        figures["failed_images"] = len(failures)
        figures["first_failure"] = failures[0]
    figures["wrong_examples"] = [{"truth": label, "prediction": text} for label, text
                                 in zip(labels, texts, strict=True) if label != text][:SHOWN_ERRORS]
    return figures


def parse_peers(value: str) -> tuple[str, ...]:
    """``paddle,tesseract`` -> the names; ``none`` or empty -> (); raises ValueError naming an unknown one."""
    names = tuple(name.strip() for name in value.split(",") if name.strip() and name.strip() != "none")
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer {unknown[0]!r}; known: {', '.join(PEERS)}, none")
    return names


def test_split(data: Path) -> tuple[list[Path], list[str]]:
    """The test split's image files and labels of a seed-layout dataset."""
    from shadownet.data.annotations import TEST_FILE, AnnotationIndex

    samples = [sample for _, sample in AnnotationIndex(data, TEST_FILE)]
    return [data / sample.path for sample in samples], [sample.label for sample in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="a seed-layout dataset (its Test/sample.txt is read)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"a list of {', '.join(PEERS)}, or none")
    args = parser.parse_args()
    try:
        peers = parse_peers(args.peers)
    except ValueError as error:
        parser.error(str(error))
    if not (args.dataset_dir / "Test" / "sample.txt").is_file():
        parser.error(f"{args.dataset_dir}: no Test/sample.txt (a seed-layout dataset)")
    images, labels = test_split(args.dataset_dir)
    print(json.dumps({peer: run(peer, images, labels) for peer in peers}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
