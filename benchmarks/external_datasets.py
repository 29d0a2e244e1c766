"""Datasets shadownet did not make, written in the seed layout for ``benchmarks/accuracy.py``.

Each maker writes ``OUT/Train/sample.txt``, ``OUT/Test/sample.txt`` and ``OUT/images/...``; the charset
files come from ``shadownet charset build`` afterwards, as a user would make them. Every image is a pure
function of the seed, so a rerun writes the same dataset. The image sources are third-party:

* ``captcha``: the ``captcha`` library's ``ImageCaptcha`` (its own fonts, warping, noise dots and curve),
  160x70 px, 4 characters out of the 36 digits and lowercase letters.
* ``captcha2``: the same library with other fonts and sizes: matplotlib's DejaVu and STIX faces at 32-44 px,
  200x60 px, 5 or 6 characters out of the 36 digits and UPPERCASE letters.
* ``digits``: the real handwritten digits scikit-learn bundles (1,797 8x8 scans from the UCI optdigits set),
  strung into numbers of 3-8 digits; train and test strings use disjoint halves of the scans (80 % / 20 %),
  so every test digit is a scan the model never saw.
* ``words``: English words from wordfreq's frequency list (the 30,000 most frequent, letters only),
  printed with Pillow in the DejaVu and STIX fonts that matplotlib ships (the synthetic generator uses
  Pillow's built-in font), at random sizes, inks, backgrounds and slight rotations, saved as JPEG.
* ``mixed``: those words in lower case, Capitalised or UPPER CASE, and numbers (62 classes).
* ``photo``: ``mixed``'s texts in 16 DejaVu and STIX faces, as a phone photo of a label shows them:
  perspective, uneven light, low contrast, shadows of texture, blur, lost resolution, sensor noise and
  strong JPEG compression (quality 35-85).
* ``long_lines``: printed lines of 2-6 tokens, at most 40 characters of printable ASCII (spaces and
  punctuation included), whose texts come from Faker (seeded per instance): words, short sentences, prices,
  dates, times, codes such as ``AB-1234``, percentages, company names, street names, cities, postcodes, phone
  numbers. They are printed by Pillow in matplotlib's 16 DejaVu and STIX faces and degraded as ``photo``'s
  are (colour, perspective, uneven light, blur, lost resolution, noise, JPEG 35-85).

The ``captcha`` library draws its randomness from the ``secrets`` module, which cannot be seeded: while it
draws a captcha, ``_seeded_captcha`` lends it a seeded stand-in, so the captcha sets too are a function of the
seed (the labels were already).

Unseen fonts: the DejaVu and STIX faces here are the benchmark's test fonts. A model that ``long_lines``
measures after pretraining (``accuracy.py --init-from RUN``) must have been pretrained without them: the
``sentences`` and ``synth`` generators draw Pillow's built-in font and whatever ``--font``/``--font-dir`` names,
so a pretraining recipe must never point either at matplotlib's font folder (``matplotlib.get_data_path()``'s
``fonts/ttf``) or at another copy of DejaVu or STIX.
"""

from __future__ import annotations

import contextlib
import os
import random
import string
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

KINDS = ("captcha", "digits", "words", "mixed", "photo", "long_lines", "captcha2")
MIXED_CHARSET = string.digits + string.ascii_letters  # the 62 classes of mixed and photo
PRINTABLE = "".join(chr(code) for code in range(32, 127))  # long_lines' characters: printable ASCII, space included
CAPTCHA2_CHARSET = string.digits + string.ascii_uppercase
LONG_LINE_MAX = 40  # characters
SOURCES = {
    "captcha": "captcha library (PyPI 'captcha'), ImageCaptcha 160x70, 4 of [0-9a-z]",
    "digits": "scikit-learn load_digits (UCI optdigits handwritten scans), strings of 3-8 digits, "
              "test digits from scans unseen in training",
    "words": "wordfreq English top-30,000 words printed in matplotlib's DejaVu/STIX fonts",
    "mixed": "the same words in lower case, Capitalised or UPPER CASE, and numbers (62 classes), "
             "in matplotlib's DejaVu/STIX fonts",
    "photo": "the mixed-case words and numbers in matplotlib's 16 DejaVu/STIX faces, photographed: perspective, "
             "uneven light, low contrast, blur, lost resolution, noise, JPEG quality 35-85 (62 classes)",
    "long_lines": "Faker texts (words, sentences, prices, dates, times, codes, percentages, companies, addresses) "
                  "in lines of 2-6 tokens, <= 40 printable ASCII characters, printed in matplotlib's 16 DejaVu/STIX "
                  "faces, photographed as photo's are (colour, perspective, uneven light, blur, JPEG 35-85)",
    "captcha2": "captcha library (PyPI 'captcha'), ImageCaptcha 200x60 in matplotlib's DejaVu/STIX faces at 32-44 px, "
                "5-6 of [0-9A-Z]",
}
WORD_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf",
              "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf")


def make(kind: str, out: Path, train: int, test: int, seed: int = 0) -> None:
    """Write ``train`` + ``test`` samples of dataset ``kind`` under ``out`` (seed layout, no charset files)."""
    writer = {"captcha": _captcha, "digits": _digits, "words": _words, "mixed": _mixed, "photo": _photo,
              "long_lines": _long_lines, "captcha2": _captcha2}[kind]
    qualities = (35, 86) if kind in ("photo", "long_lines") else (75, 96)
    out = Path(out)
    for split, count, offset in (("Train", train, 0), ("Test", test, train)):
        images = out / "images" / split.lower()
        images.mkdir(parents=True, exist_ok=True)
        lines = []
        for index, (image, label) in enumerate(writer(count, seed, split == "Test")):
            name = f"{offset + index:06d}.{'png' if kind == 'digits' else 'jpg'}"
            path = images / name
            if kind == "digits":
                image.save(path)
            else:
                image.save(path, quality=int(np.random.default_rng([seed, offset + index]).integers(*qualities)))
            lines.append(f"/images/{split.lower()}/{name} {label}\n")
        (out / split).mkdir(exist_ok=True)
        temporary = out / split / "sample.txt.partial"
        temporary.write_text("".join(lines), encoding="utf-8")
        os.replace(temporary, out / split / "sample.txt")


class _SeededSecrets:
    """The three functions of ``secrets`` that the ``captcha`` library calls, drawn from a seeded generator."""

    def __init__(self, rng: random.Random):
        self._rng = rng

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, sequence):
        return self._rng.choice(sequence)


@contextlib.contextmanager
def _seeded_captcha(rng: random.Random):
    """While inside, ``captcha.image`` draws its colours, warping and noise from ``rng`` (not ``secrets``)."""
    import captcha.image

    kept = captcha.image.secrets
    captcha.image.secrets = _SeededSecrets(rng)
    try:
        yield
    finally:
        captcha.image.secrets = kept


def _captcha(count: int, seed: int, test: bool):
    from captcha.image import ImageCaptcha

    alphabet = string.digits + string.ascii_lowercase
    generator = ImageCaptcha(width=160, height=70)
    rng = random.Random(f"captcha-{seed}-{test}")
    for _ in range(count):
        text = "".join(rng.choice(alphabet) for _ in range(4))
        with _seeded_captcha(random.Random(rng.random())):
            image = generator.generate_image(text).convert("RGB")
        yield image, text


CAPTCHA2_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
                  "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf")


def _captcha2(count: int, seed: int, test: bool):
    """``captcha``'s library with matplotlib's faces, 200x60, 5 or 6 characters of [0-9A-Z]."""
    from captcha.image import ImageCaptcha

    faces = _faces(CAPTCHA2_FONTS, CAPTCHA2_CHARSET)
    generator = ImageCaptcha(width=200, height=60, fonts=[str(face) for face in faces], font_sizes=(32, 38, 44))
    rng = random.Random(f"captcha2-{seed}-{test}")
    for _ in range(count):
        text = "".join(rng.choice(CAPTCHA2_CHARSET) for _ in range(rng.choice((5, 6))))
        with _seeded_captcha(random.Random(rng.random())):
            image = generator.generate_image(text).convert("RGB")
        yield image, text


def _digits(count: int, seed: int, test: bool):
    from sklearn.datasets import load_digits

    scans = load_digits()
    order = np.random.default_rng([seed, 8]).permutation(len(scans.target))
    cut = int(len(order) * 0.8)
    pool = order[cut:] if test else order[:cut]
    rng = np.random.default_rng([seed, 1 if test else 0])
    for _ in range(count):
        chosen = rng.choice(pool, size=int(rng.integers(3, 9)))
        height = int(rng.integers(28, 41))
        canvas = np.zeros((height + 8, 8 + sum(height + 8 for _ in chosen)), np.float32)
        x = int(rng.integers(2, 8))
        for index in chosen:
            size = int(height * rng.uniform(0.8, 1.0))
            glyph = Image.fromarray((scans.images[index] * (255.0 / 16.0)).astype(np.uint8))
            glyph = np.asarray(glyph.resize((size, size), Image.BICUBIC), np.float32)
            y = int(rng.integers(0, canvas.shape[0] - size + 1))
            canvas[y : y + size, x : x + size] = np.maximum(canvas[y : y + size, x : x + size], glyph)
            x += size + int(rng.integers(-2, 7))
        canvas = canvas[:, : x + int(rng.integers(2, 8))]
        paper, ink = rng.uniform(200, 255), rng.uniform(0, 80)
        pixels = paper + (ink - paper) * np.clip(canvas, 0, 255) / 255.0
        yield Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).convert("RGB"), \
            "".join(str(scans.target[i]) for i in chosen)


def _mixed(count: int, seed: int, test: bool):
    """``words``' images with the cases mixed: 40 % lower, 25 % Capitalised, 20 % UPPER, 15 % numbers."""
    return _words(count, seed, test, mixed=True)


def _mixed_texts(rng: np.random.Generator, words: list[str]) -> str:
    word = words[int(rng.integers(len(words)))]
    case = rng.random()
    return (word if case < 0.4 else word.capitalize() if case < 0.65 else word.upper() if case < 0.85
            else str(int(rng.integers(0, 10 ** int(rng.integers(1, 7))))))


def _word_list() -> list[str]:
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", 30_000) if w.isascii() and w.isalpha() and w.islower()]


def _fonts_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _faces(names: tuple[str, ...], characters: str = MIXED_CHARSET) -> list[Path]:
    """The faces' paths; stops, naming the face, if one lacks a glyph of ``characters`` (it would draw a
    blank image under a label)."""
    from fontTools.ttLib import TTFont  # matplotlib's own dependency

    paths = [font_path(name) for name in names]
    for path in paths:
        cmap = TTFont(path, lazy=True).getBestCmap()
        missing = "".join(c for c in characters if ord(c) not in cmap)
        if missing:
            raise SystemExit(f"{path}: no glyph for {missing[:20]!r}: not a face for these datasets")
    return paths


def font_path(name: str) -> Path:
    """One of the TrueType faces matplotlib ships."""
    return _fonts_dir() / name


def _words(count: int, seed: int, test: bool, mixed: bool = False):
    faces = _faces(WORD_FONTS)
    words = _word_list()
    rng = np.random.default_rng([seed, (13 if test else 12) if mixed else (11 if test else 10)])
    for _ in range(count):
        word = _mixed_texts(rng, words) if mixed else words[int(rng.integers(len(words)))]
        font = ImageFont.truetype(str(faces[int(rng.integers(len(faces)))]),
                                  int(rng.integers(22, 49)))
        left, top, right, bottom = font.getbbox(word)
        pad_x, pad_y = int(rng.integers(2, 16)), int(rng.integers(2, 10))
        paper = tuple(int(v) for v in rng.integers(150, 256, 3))
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        image = Image.new("RGB", (right - left + 2 * pad_x, bottom - top + 2 * pad_y), paper)
        ImageDraw.Draw(image).text((pad_x - left, pad_y - top), word, font=font, fill=ink)
        angle = float(rng.uniform(-3, 3))
        image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=paper)
        if rng.random() < 0.3:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
        yield image, word


# Not DejaVuSansDisplay or DejaVuSerifDisplay: they hold a few math symbols and none of the 62 characters.
PHOTO_FONTS = WORD_FONTS + ("DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-BoldOblique.ttf",
                            "DejaVuSansMono-Oblique.ttf", "DejaVuSerif-BoldItalic.ttf", "STIXGeneralBolIta.ttf")


def _photo(count: int, seed: int, test: bool):
    """``mixed``'s texts as a photo of a printed label shows them (see the module's docstring)."""
    faces = _faces(PHOTO_FONTS)
    words = _word_list()
    rng = np.random.default_rng([seed, 15 if test else 14])
    for _ in range(count):
        text = _mixed_texts(rng, words)
        font = ImageFont.truetype(str(faces[int(rng.integers(len(faces)))]),
                                  int(rng.integers(24, 56)))
        yield _photographed(text, font, rng), text


def _photographed(text: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> Image.Image:
    """``text`` printed in ``font`` on a label, as a phone photo shows it (see the module's docstring)."""
    import cv2

    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = int(rng.integers(4, 24)), int(rng.integers(4, 14))
    width, height = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text((pad_x - left, pad_y - top), text, font=font, fill=255)
    # Perspective: each corner moved by up to 6 % of the height / 4 % of the width.
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    jitter = rng.uniform(-1, 1, (4, 2)) * np.float32([0.04 * width, 0.06 * height + 2])
    warp = cv2.getPerspectiveTransform(corners, (corners + jitter).astype(np.float32))
    coverage = cv2.warpPerspective(np.asarray(mask, np.float32) / 255.0, warp, (width, height))
    # Paper and ink: contrast from strong to weak, either polarity now and then.
    if rng.random() < 0.85:
        paper = rng.uniform(90, 255, 3)
        ink = paper * rng.uniform(0.05, 0.45)
    else:  # light on dark
        paper = rng.uniform(10, 100, 3)
        ink = np.minimum(255, paper + rng.uniform(90, 200))
    # Uneven light: a gradient across the label and a blotchy low-frequency shade.
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * gx / width + np.sin(angle) * gy / height)
    light = 1.0 - rng.uniform(0, 0.45) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    blotches = cv2.resize(rng.uniform(0, 1, (3, 6)).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_CUBIC)
    light = light * (1.0 - rng.uniform(0, 0.3) * blotches)
    pixels = (paper + (ink - paper) * coverage[..., None]) * light[..., None]
    if rng.random() < 0.6:
        sigma = float(rng.uniform(0.3, 1.2))
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigma)
    if rng.random() < 0.5:  # lost resolution: a smaller sensor image, scaled back up
        scale = float(rng.uniform(0.45, 0.85))
        small = cv2.resize(pixels, (max(8, int(width * scale)), max(8, int(height * scale))),
                           interpolation=cv2.INTER_AREA)
        pixels = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    pixels = pixels + rng.normal(0, rng.uniform(2, 10), pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _long_lines(count: int, seed: int, test: bool):
    """Faker's lines printed in the 16 DejaVu/STIX faces, photographed as ``photo``'s words are."""
    from faker import Faker

    faces = _faces(PHOTO_FONTS, PRINTABLE)
    fake = Faker("en_US")
    fake.seed_instance(f"long_lines-{seed}-{test}")
    rng = np.random.default_rng([seed, 17 if test else 16])
    for _ in range(count):
        text = _line_text(fake)
        font = ImageFont.truetype(str(faces[int(rng.integers(len(faces)))]), int(rng.integers(24, 49)))
        yield _photographed(text, font, rng), text


def _line_text(fake) -> str:
    """2-6 tokens from Faker joined by spaces: at most LONG_LINE_MAX characters of printable ASCII."""
    while True:
        wanted = fake.random_int(2, 6)
        tokens: list[str] = []
        for _ in range(40):
            token = " ".join(_token(fake).split())  # one space between words, none at either end
            if not token or not all(c in PRINTABLE for c in token):
                continue
            if len(" ".join([*tokens, token])) <= LONG_LINE_MAX:
                tokens.append(token)
                if len(tokens) == wanted:
                    break
        if len(tokens) >= 2:
            return " ".join(tokens)


def _when(fake) -> date:
    # Fixed bounds: Faker's date() and time() draw up to today, so their output would change with the day.
    return fake.date_between_dates(date(1990, 1, 1), date(2035, 12, 31))


_TOKENS = (
    (6, lambda f: f.word()),
    (2, lambda f: f.word().capitalize()),
    (1, lambda f: f.word().upper()),
    (2, lambda f: f.sentence(nb_words=f.random_int(2, 4))),
    (2, lambda f: f.pricetag()),
    (1, lambda f: f"{f.random_int(1, 9999)}.{f.random_int(0, 99):02d} {f.currency_code()}"),
    (1, lambda f: _when(f).strftime(f.random_element(("%d/%m/%Y", "%Y-%m-%d", "%b %d, %Y", "%d.%m.%y",
                                                      "%m/%d/%y", "%d %B %Y")))),
    (1, lambda f: f"{f.random_int(0, 23):02d}:{f.random_int(0, 59):02d}"),
    (1, lambda f: f"{f.random_int(1, 12)}:{f.random_int(0, 59):02d} {f.random_element(('AM', 'PM', 'am', 'pm'))}"),
    (2, lambda f: f.bothify(f.random_element(("??-####", "???-###", "#??-##?", "??####", "No. ####", "#####-??",
                                              "REF/####/??"))).upper()),
    (1, lambda f: f"{f.random_int(0, 100)}%"),
    (1, lambda f: f"{f.random_element(('+', '-', ''))}{f.random_int(0, 999) / 10:.1f}%"),
    (1, lambda f: f.company()),
    (1, lambda f: f"{f.building_number()} {f.street_name()}"),
    (1, lambda f: f.city()),
    (1, lambda f: f"{f.state_abbr()} {f.postcode()}"),
    (1, lambda f: f.numerify("(###) ###-####")),
    (1, lambda f: f.last_name()),
    (1, lambda f: f.random_element(("#", "&", "@", "x", "/", "-", "(" + f.word() + ")", '"' + f.word() + '"',
                                    f.word() + ":", f.word() + ";", f.word() + "!", f.word() + "?"))),
)


def _token(fake) -> str:
    """One token of a kind drawn by weight (words most often)."""
    total = sum(weight for weight, _ in _TOKENS)
    pick = fake.random_int(0, total - 1)
    for weight, make_token in _TOKENS:
        if pick < weight:
            return make_token(fake)
        pick -= weight
    raise AssertionError("unreachable")
