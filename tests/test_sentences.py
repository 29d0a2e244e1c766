"""`synth --kind sentences`: text, determinism, fonts from --font-dir, and the round trip through tfrecords."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import tree_digest
from shadownet.cli import main
from shadownet.data.charset import Charset
from shadownet.data.render import Renderer
from shadownet.data.sentences import MAX_LENGTH, sentence_text
from shadownet.data.synth import SynthConfig, generate
from test_layouts import records

ASCII95 = {chr(code) for code in range(32, 127)}  # the ascii95 preset
SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")


def read_samples(root: Path) -> list[tuple[str, str]]:
    samples = []
    for split in ("Train", "Test"):
        for line in (root / split / "sample.txt").read_text(encoding="utf-8").splitlines():
            path, _, label = line.partition(" ")
            samples.append((path, label))
    return samples


def test_texts_are_clean_and_varied():
    words = Renderer.create().words
    texts = [sentence_text(np.random.default_rng([7, i]), words) for i in range(200)]
    for text in texts:
        assert text and len(text) <= MAX_LENGTH, text
        assert set(text) <= ASCII95, text
        assert text == text.strip() and "  " not in text, text
        assert 1 <= len(text.split(" ")) <= 8, text
    joined = "\n".join(texts)
    assert re.search(r"\d", joined)
    assert re.search(r"\d+\.\d\d", joined)  # prices
    assert re.search(r"\d{4}-\d\d-\d\d|\d\d/\d\d/\d{4}|\d{1,2} [A-Za-z]{3} \d{4}", joined)  # dates
    assert "%" in joined
    assert re.search(r"[,.:;!?'\"()\-/&#+]", joined)
    assert re.search(r"\b[A-Z]{3,}\b", joined)  # an upper-case word
    assert re.search(r"\b[a-z]{3,}\b", joined)
    assert len(set(texts)) == len(texts)
    # The same generator state, the same text.
    assert sentence_text(np.random.default_rng([7, 3]), words) == texts[3]


def test_deterministic_per_seed_and_workers(tmp_path):
    runs = {}
    for name, seed, workers in (("a", 4, 1), ("b", 4, 2), ("c", 5, 1)):
        summary = generate(SynthConfig(out_dir=tmp_path / name, count=24, kind="sentences", seed=seed,
                                       test_ratio=0.25, workers=workers))
        runs[name] = tree_digest(tmp_path / name)
    assert summary["charset"] == "ascii95" and summary["kind"] == "sentences"
    assert summary["fonts"][0]["name"].startswith("built-in")
    assert runs["a"] == runs["b"]
    assert len(runs["a"]) == 24 + 4
    images = [name for name in runs["a"] if name.startswith("images")]
    assert sum(runs["a"][name] != runs["c"][name] for name in images) == len(images)
    assert Charset.load(tmp_path / "a") == Charset.from_preset("ascii95")

    samples = read_samples(tmp_path / "a")
    assert len(samples) == 24
    for path, label in samples:
        assert label and len(label) <= MAX_LENGTH and set(label) <= ASCII95
        assert label == label.strip() and "  " not in label
        image = cv2.imread(str(tmp_path / "a" / path.lstrip("/")), cv2.IMREAD_COLOR)
        assert image is not None and 32 <= image.shape[0] <= 64 and image.shape[1] >= 8
    assert any(" " in label for _, label in samples)


def test_existing_kinds_keep_their_charset(tmp_path):
    summary = generate(SynthConfig(out_dir=tmp_path, count=3, kind="lines", seed=0))
    assert summary["charset"] == "digits_lower"


@pytest.mark.skipif(not SYSTEM_FONTS.is_dir() or len(list(SYSTEM_FONTS.glob("DejaVuSans*.ttf"))) < 2,
                    reason="needs two DejaVu Sans fonts under /usr/share/fonts/truetype/dejavu")
def test_font_dir_fonts_are_used_and_listed(tmp_path, capsys):
    fonts = tmp_path / "fonts"
    (fonts / "sub").mkdir(parents=True)
    shutil.copy(SYSTEM_FONTS / "DejaVuSans.ttf", fonts / "b.ttf")
    shutil.copy(SYSTEM_FONTS / "DejaVuSans-Bold.ttf", fonts / "sub" / "a.TTF")
    (fonts / "notes.txt").write_text("not a font")
    config = SynthConfig(out_dir=tmp_path / "out", count=12, kind="sentences", seed=1, font_dirs=(fonts,))
    assert config.font_files() == (fonts / "b.ttf", fonts / "sub" / "a.TTF")
    summary = generate(config)
    listed = summary["fonts"]
    assert [font["name"] for font in listed[1:]] == ["b.ttf", "a.TTF"]
    assert listed[1]["size"] == (fonts / "b.ttf").stat().st_size and len(listed[1]["sha256"]) == 64
    # The fonts change the images: the same seed with the built-in font only draws other pixels.
    generate(SynthConfig(out_dir=tmp_path / "builtin", count=12, kind="sentences", seed=1))
    assert tree_digest(tmp_path / "out") != tree_digest(tmp_path / "builtin")

    code = main(["synth", "--out", str(tmp_path / "cli"), "--count", "4", "--kind", "sentences",
                 "--workers", "1", "--font-dir", str(fonts)])
    assert code == 0
    err = capsys.readouterr().err
    assert "font b.ttf " in err and "font a.TTF " in err and listed[2]["sha256"] in err


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_font_dir_is_one_line_exit_2(tmp_path, capsys, make):
    folder = tmp_path / "fonts"
    if make == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("no fonts")
    code = main(["synth", "--out", str(tmp_path / "out"), "--count", "2", "--kind", "sentences",
                 "--font-dir", str(folder)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("shadownet: error: --font-dir ") and str(folder) in err
    assert ("no such directory" if make == "missing" else "holds no .ttf, .otf or .ttc font") in err
    assert not (tmp_path / "out").exists()


def test_a_font_dir_whose_fonts_cannot_draw_the_charset_is_one_line_exit_2(tmp_path, capsys):
    folder = tmp_path / "fonts"
    folder.mkdir()
    (folder / "broken.ttf").write_bytes(b"not a font at all")
    code = main(["synth", "--out", str(tmp_path / "out"), "--count", "2", "--kind", "sentences",
                 "--font-dir", str(folder)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("shadownet: error: --font-dir ") and "no font draws every character" in err
    assert "broken.ttf: cannot be opened" in err and not (tmp_path / "out").exists()


@pytest.mark.skipif(not (SYSTEM_FONTS / "DejaVuSans.ttf").is_file(), reason=f"needs DejaVu Sans in {SYSTEM_FONTS}")
def test_fonts_that_lack_a_glyph_are_left_out_and_named(tmp_path):
    from shadownet.data.sentences import missing_glyphs, usable_fonts

    dejavu = SYSTEM_FONTS / "DejaVuSans.ttf"
    assert missing_glyphs(dejavu, "Az09$%(),.:;") == ""
    assert missing_glyphs(dejavu, "a\u4e00b\u4e8c") == "\u4e00\u4e8c"  # no CJK in DejaVu: its .notdef box
    (tmp_path / "bad.ttf").write_bytes(b"nope")
    kept, skipped = usable_fonts([dejavu, tmp_path / "bad.ttf"], "ab\u4e00")
    assert kept == () and [f["name"] for f in skipped] == ["DejaVuSans.ttf", "bad.ttf"]
    assert "no glyph for '\u4e00'" in skipped[0]["reason"] and "cannot be opened" in skipped[1]["reason"]
    kept, skipped = usable_fonts([dejavu], "".join(Charset.from_preset("ascii95").characters))
    assert kept == (dejavu,) and skipped == []


@pytest.mark.skipif(not (SYSTEM_FONTS / "DejaVuSans.ttf").is_file(), reason=f"needs DejaVu Sans in {SYSTEM_FONTS}")
def test_symbol_fonts_are_left_out(tmp_path):
    """A face whose OS/2 family class is Symbolic (12) draws ASCII as dingbats or Greek: left out, though it has a
    glyph for every character. The test makes one: DejaVu Sans with that class written into its OS/2 table."""
    import struct

    from shadownet.data.sentences import symbolic, usable_fonts

    dejavu = SYSTEM_FONTS / "DejaVuSans.ttf"
    data = bytearray(dejavu.read_bytes())
    tables = {bytes(data[12 + 16 * i: 16 + 16 * i]): struct.unpack_from(">I", data, 20 + 16 * i)[0]
              for i in range(struct.unpack_from(">H", data, 4)[0])}
    struct.pack_into(">h", data, tables[b"OS/2"] + 30, 12 << 8)
    symbols = tmp_path / "Symbols.ttf"
    symbols.write_bytes(bytes(data))
    assert symbolic(symbols) and not symbolic(dejavu)
    kept, skipped = usable_fonts([dejavu, symbols], "Az09")
    assert kept == (dejavu,)
    assert skipped == [{"name": "Symbols.ttf", "reason": "a symbol font (OS/2 family class Symbolic): it draws "
                                                         "letters as symbols"}]


def test_validate_and_tfrecords_keep_the_labels(tmp_path):
    data, save = tmp_path / "data", tmp_path / "records"
    generate(SynthConfig(out_dir=data, count=16, kind="sentences", seed=9, test_ratio=0.25))
    assert main(["validate", "--dataset-dir", str(data)]) == 0
    assert main(["tfrecords", "--dataset-dir", str(data), "--save-dir", str(save), "--workers", "1"]) == 0
    # tfrecords holds part of Train out as validation.
    for splits, folder in ((("train", "validation"), "Train"), (("test",), "Test")):
        lines = (data / folder / "sample.txt").read_text(encoding="utf-8").splitlines()
        written = sorted(line.partition(" ")[2] for line in lines)
        read_back = sorted(r["label/text"].decode("utf-8") for split in splits for r in records(save, split))
        assert read_back == written and len(written) == (12 if folder == "Train" else 4)
    assert any(" " in label for label in written + read_back)
