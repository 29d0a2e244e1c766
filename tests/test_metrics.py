"""Metrics (edit distance, summary, contact sheet) and lexicon candidates."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from PIL import Image

from shadownet.errors import DataError
from shadownet.learn.lexicon import Lexicon
from shadownet.learn.metrics import (
    RIGHT_COLOUR,
    WRONG_COLOUR,
    Prediction,
    edit_distance,
    summarize,
    write_grid,
)


def brute_distance(a: str, b: str) -> int:
    """Full-matrix Levenshtein, the textbook definition, as a reference."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


# -- edit distance ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("kitten", "sitting", 3),
        ("sitting", "kitten", 3),
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("same", "same", 0),
        ("中文", "中", 1),
        ("中文", "文中", 2),
        ("flaw", "lawn", 2),
        ("abcdef", "azcdxf", 2),
        ("naïve", "naive", 1),
    ],
)
def test_edit_distance_known_pairs(a, b, expected):
    assert edit_distance(a, b) == expected


def test_edit_distance_matches_reference_on_random_strings():
    rng = random.Random(7)
    for _ in range(300):
        a = "".join(rng.choice("abcé中") for _ in range(rng.randrange(12)))
        b = "".join(rng.choice("abcé中") for _ in range(rng.randrange(12)))
        assert edit_distance(a, b) == brute_distance(a, b), (a, b)


# -- summarize ----------------------------------------------------------------------------


def sample_predictions() -> list[Prediction]:
    return [
        Prediction("a.jpg", "hello", "hello", 0.9),  # right
        Prediction("b.jpg", "World", "world", 0.8),  # right ignoring case; ned 1/5
        Prediction("c.jpg", "kitten", "sitting", 0.5),  # ned 3/7
        Prediction("d.jpg", "abc", "", 0.1),  # ned 1
        Prediction("e.jpg", "中文", "中", 0.6),  # ned 1/2
        Prediction("f.jpg", "ab", "ax", 0.6),  # ned 1/2, same confidence as e: source decides
        Prediction("g.jpg", "xy", "xz", 0.2),  # ned 1/2, lower confidence: before e and f
    ]


def test_summarize_exact_values():
    summary = summarize(sample_predictions())
    assert summary["num_samples"] == 7
    assert summary["num_correct"] == 1
    assert summary["word_accuracy"] == 0.142857  # 1/7
    assert summary["word_accuracy_case_insensitive"] == 0.285714  # 2/7
    assert summary["char_error_rate"] == 0.4  # (0+1+3+3+1+1+1) / (5+5+6+3+2+2+2) = 10/25
    assert summary["normalized_edit_distance"] == 0.446939  # (0+.2+3/7+1+.5+.5+.5) / 7
    assert summary["mean_confidence"] == 0.528571  # 3.7 / 7


def test_summarize_worst_examples_order_and_content():
    worst = summarize(sample_predictions())["worst_examples"]
    assert [w["source"] for w in worst] == ["d.jpg", "g.jpg", "e.jpg", "f.jpg", "c.jpg", "b.jpg"]
    assert worst[0] == {
        "source": "d.jpg", "truth": "abc", "prediction": "", "edit_distance": 3, "confidence": 0.1,
    }
    assert worst[2] == {
        "source": "e.jpg", "truth": "中文", "prediction": "中", "edit_distance": 1, "confidence": 0.6,
    }
    assert [w["source"] for w in summarize(sample_predictions(), worst=2)["worst_examples"]] == ["d.jpg", "g.jpg"]
    assert summarize(sample_predictions(), worst=0)["worst_examples"] == []


def test_summarize_empty_and_empty_truths():
    empty = summarize([])
    assert empty["num_samples"] == 0
    for key in ("word_accuracy", "word_accuracy_case_insensitive", "char_error_rate",
                "normalized_edit_distance", "mean_confidence"):
        assert empty[key] == 0.0, key
    assert empty["worst_examples"] == []

    assert summarize([Prediction("x", "", "", 1.0)])["char_error_rate"] == 0.0
    blank_truth = summarize([Prediction("x", "", "ab", 0.5)])
    assert blank_truth["char_error_rate"] == 1.0
    assert blank_truth["normalized_edit_distance"] == 1.0
    assert blank_truth["word_accuracy"] == 0.0


# -- contact sheet ------------------------------------------------------------------------


def rgb_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Greys only, so any pure green or red pixel on the sheet comes from the text.
    grey = rng.integers(60, 200, size=(height, width, 1), dtype=np.uint8)
    return np.repeat(grey, 3, axis=2)


def grid_predictions(all_right: bool = False) -> list[Prediction]:
    return [
        Prediction("a.jpg", "hello", "hello", 0.9, rgb_image(32, 100, 0)),
        Prediction("b.jpg", "world", "world" if all_right else "word", 0.4, rgb_image(64, 200, 1)),
        Prediction("c.jpg", "no image", "x", 0.1, None),
        Prediction("d.jpg", "long", "long", 0.7, rgb_image(20, 900, 2)),
    ]


def colour_count(path, colour) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB"))
    return int((pixels == np.array(colour, np.uint8)).all(axis=2).sum())


def test_write_grid_png_size_colours_and_determinism(tmp_path):
    path = tmp_path / "grid.png"
    write_grid(path, grid_predictions(), columns=2)
    bgr = cv2.imread(str(path))
    assert bgr is not None and bgr.shape[2] == 3
    height, width = bgr.shape[:2]
    # Three cells with images in two columns: two rows; cells at most 240 px of image wide plus padding.
    assert 2 * 120 <= width <= 2 * 260
    assert 2 * (32 + 2 * 12) <= height <= 2 * (48 + 2 * 20 + 20)
    assert colour_count(path, RIGHT_COLOUR) > 0
    assert colour_count(path, WRONG_COLOUR) > 0
    assert not list(tmp_path.glob(".*partial"))

    again = tmp_path / "again.png"
    write_grid(again, grid_predictions(), columns=2)
    assert again.read_bytes() == path.read_bytes()

    right = tmp_path / "right.png"
    write_grid(right, grid_predictions(all_right=True), columns=2)
    assert colour_count(right, RIGHT_COLOUR) > 0
    assert colour_count(right, WRONG_COLOUR) == 0
    assert right.read_bytes() != path.read_bytes()


def test_write_grid_limits_and_no_images(tmp_path):
    one = tmp_path / "one.png"
    write_grid(one, grid_predictions(), columns=4, max_items=1)
    with Image.open(one) as image:
        assert image.width <= 260 and image.height <= 48 + 60
    assert colour_count(one, WRONG_COLOUR) == 0  # the wrong one was the second item

    none = tmp_path / "none.png"
    write_grid(none, [Prediction("c.jpg", "a", "b", 0.5, None)])
    with Image.open(none) as image:
        assert image.format == "PNG" and image.width > 0


# -- lexicon ------------------------------------------------------------------------------


def write_lexicon(tmp_path, data: bytes):
    path = tmp_path / "words.txt"
    path.write_bytes(data)
    return path


def test_lexicon_load_dedupes_and_skips_blank_lines(tmp_path):
    lexicon = Lexicon.load(write_lexicon(tmp_path, "\ufeffapple\n\nbanana\r\napple\n  cherry  \n\n中文\n".encode()))
    assert lexicon.words == ("apple", "banana", "cherry", "中文")
    assert len(lexicon) == 4
    assert "cherry" in lexicon and "中文" in lexicon and "grape" not in lexicon


def test_lexicon_load_errors(tmp_path):
    with pytest.raises(DataError, match=r"words\.txt:3: not UTF-8"):
        Lexicon.load(write_lexicon(tmp_path, b"apple\nbanana\nbad\xff\xfeword\n"))
    with pytest.raises(DataError, match="no words"):
        Lexicon.load(write_lexicon(tmp_path, b"\n  \r\n\n"))
    with pytest.raises(DataError, match="file not found"):
        Lexicon.load(tmp_path / "missing.txt")


CARS = ["cart", "card", "care", "car", "cat", "dog", "cards", "scar"]


def test_candidates_order_limit_and_distance():
    lexicon = Lexicon(CARS)
    assert lexicon.candidates("car") == ["car", "cart", "card", "care", "cat", "scar"]
    assert lexicon.candidates("car", limit=3) == ["car", "cart", "card"]
    assert lexicon.candidates("car", max_distance=0) == ["car"]
    assert lexicon.candidates("cark") == ["cart", "card", "care", "car"]
    assert lexicon.candidates("cark", max_distance=2) == ["cart", "card", "care", "car", "cat", "cards", "scar"]
    assert lexicon.candidates("cark", max_distance=0) == []
    assert lexicon.candidates("zzzzzz") == []
    assert lexicon.candidates("", max_distance=3) == ["car", "cat", "dog"]
    assert lexicon.candidates("car", limit=0) == []
    with pytest.raises(ValueError):
        lexicon.candidates("car", max_distance=-1)
    assert Lexicon(["中文", "中国", "文"]).candidates("中") == ["中文", "中国", "文"]


def test_candidates_past_64_characters():
    long_words = ["a" * 69 + "b", "a" * 70, "b" * 70]
    lexicon = Lexicon(long_words)
    assert lexicon.candidates("a" * 70, max_distance=1) == ["a" * 70, "a" * 69 + "b"]
    assert lexicon.candidates("a" * 69 + "c", max_distance=1) == ["a" * 69 + "b", "a" * 70]


def test_candidates_match_brute_force():
    rng = random.Random(3)
    alphabet = "abcdeé中"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))) for _ in range(400)]
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60, 70))) for _ in range(10)]
    lexicon = Lexicon(words)
    unique = list(dict.fromkeys(words))
    queries = [rng.choice(unique)[: rng.randrange(1, 14)] + rng.choice(["", "x", "ab"]) for _ in range(60)]
    queries += [rng.choice(unique[-10:])[1:] + "z" for _ in range(5)]  # around the 64-bit boundary
    for query in queries:
        ranked = sorted((edit_distance(query, w), i) for i, w in enumerate(unique))
        for max_distance in (None, 1, 3):
            bound = max(1, len(query) // 3) if max_distance is None else max_distance
            expected = [unique[i] for d, i in ranked if d <= bound][:20]
            assert lexicon.candidates(query, max_distance) == expected, (query, max_distance)


def test_candidates_on_a_50k_word_lexicon():
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    generated = ("".join(rng.choice(letters) for _ in range(rng.randrange(3, 14))) for _ in range(50_000))
    words = list(dict.fromkeys(generated))
    lexicon = Lexicon(words)
    target = next(w for w in words[1000:] if len(w) == 12)
    typo = target[:4] + "q" + target[5:7] + target[8:]  # one substitution, one deletion
    assert lexicon.candidates(typo)[0] == target
    assert lexicon.candidates(target)[0] == target
    assert len(lexicon.candidates(words[5][:3], max_distance=2, limit=7)) == 7
