"""The character set: class index <-> character, read from and written to the seed's JSON files.

Formats (as published with the original CRNN training example):

* ``char_dict.json`` maps ``str(ord(c))`` to ``c``: ``{"97": "a", "32": " "}``.
* ``ord_map.json`` maps class index to ``str(ord(c))``: ``{"0": "97", "36": "32"}``.

The 2019 variant is read too: ``char_dict.json`` keys ``"97_ord"``, and an
``ord_map.json`` that maps both ways (``"0_index": "97"`` and ``"97_ord": "0"``).

Class indices are 0 .. N-1 in the order of ``ord_map.json``. The CTC blank is
NOT one of them: it is index N (``Charset.blank_index``), the last logit of a
model with ``Charset.num_classes == N + 1`` outputs.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import DataError, ShadownetError
from ..fileio import write_text_atomic

CHAR_DICT_FILE = "char_dict.json"
ORD_MAP_FILE = "ord_map.json"

PRESETS: dict[str, str] = {
    # The original's 36 classes: digits then lowercase letters.
    "digits_lower": string.digits + string.ascii_lowercase,
    # Every printable ASCII character, space included (code points 32..126).
    "ascii95": "".join(chr(c) for c in range(32, 127)),
}


@dataclass(frozen=True)
class Charset:
    """An ordered set of characters; position = class index."""

    characters: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for char in self.characters:
            if len(char) != 1:
                raise DataError(f"charset entry {char!r} is not a single character")
        index = {char: i for i, char in enumerate(self.characters)}
        if len(index) != len(self.characters):
            dupes = sorted({c for c in self.characters if self.characters.count(c) > 1})
            raise DataError(f"charset lists a character twice: {', '.join(map(repr, dupes))}")
        if not self.characters:
            raise DataError("charset is empty")
        object.__setattr__(self, "_index", index)

    # -- arithmetic the model and the CTC loss depend on -------------------------------
    @property
    def size(self) -> int:
        """Number of real characters N (class indices 0 .. N-1)."""
        return len(self.characters)

    @property
    def blank_index(self) -> int:
        """The CTC blank: one past the last character, i.e. N."""
        return len(self.characters)

    @property
    def num_classes(self) -> int:
        """Logits per time step: N characters + 1 blank."""
        return len(self.characters) + 1

    # -- encoding ------------------------------------------------------------------------
    def __contains__(self, char: str) -> bool:
        return char in self._index

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` not in the charset, in order of first appearance."""
        seen: dict[str, None] = {}
        for char in text:
            if char not in self._index:
                seen.setdefault(char)
        return list(seen)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[char] for char in text]
        except KeyError as exc:
            raise DataError(f"character {exc.args[0]!r} is not in the charset") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Map class ids back to text; the blank and out-of-range ids are dropped."""
        n = len(self.characters)
        return "".join(self.characters[i] for i in ids if 0 <= i < n)

    @property
    def has_uppercase(self) -> bool:
        return any(char.isupper() for char in self.characters)

    @property
    def sha256(self) -> str:
        """Identity of the class mapping: same characters in the same order -> same hash."""
        canonical = json.dumps(list(self.characters), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_text(cls, chars: Iterable[str]) -> "Charset":
        """Sorted by code point, so the same labels always give the same class indices."""
        return cls(tuple(sorted(set(chars))))

    @classmethod
    def from_preset(cls, name: str) -> "Charset":
        if name not in PRESETS:
            raise DataError(f"unknown charset preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(tuple(PRESETS[name]))

    @classmethod
    def load(cls, directory: Path) -> "Charset":
        """Read ``char_dict.json`` and ``ord_map.json`` from ``directory``."""
        directory = Path(directory)
        return cls.from_files(directory / CHAR_DICT_FILE, directory / ORD_MAP_FILE)

    @classmethod
    def from_files(cls, char_dict_path: Path, ord_map_path: Path) -> "Charset":
        char_dict = _read_json_object(Path(char_dict_path))
        ord_map = _read_json_object(Path(ord_map_path))
        if any(key.endswith("_ord") for key in char_dict) or any(
            key.endswith(("_index", "_ord")) for key in ord_map
        ):
            char_dict, ord_map = _from_2019_variant(char_dict, ord_map, char_dict_path, ord_map_path)
        return cls(_characters_from_maps(char_dict, ord_map, Path(char_dict_path), Path(ord_map_path)))

    # -- writing ---------------------------------------------------------------------------
    def to_json(self) -> tuple[str, str]:
        """The text of ``char_dict.json`` and ``ord_map.json`` (2018 format, deterministic order)."""
        ords = [str(ord(c)) for c in self.characters]
        char_dict = {o: c for o, c in sorted(zip(ords, self.characters, strict=True), key=lambda kv: int(kv[0]))}
        ord_map = {str(i): o for i, o in enumerate(ords)}
        dump = lambda obj: json.dumps(obj, ensure_ascii=False, indent=2) + "\n"  # noqa: E731
        return dump(char_dict), dump(ord_map)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        char_dict_text, ord_map_text = self.to_json()
        write_text_atomic(directory / CHAR_DICT_FILE, char_dict_text)
        write_text_atomic(directory / ORD_MAP_FILE, ord_map_text)


def of_dataset(dataset_dir: Path, source: Path | None = None) -> Charset:
    """The dataset's charset JSONs; when they are missing, the message says how to write them (``source``: the
    dataset as ``--dataset-dir`` named it, when not its folder: a CSV file)."""
    if not (dataset_dir / CHAR_DICT_FILE).exists():
        raise DataError(f"{dataset_dir / CHAR_DICT_FILE}: file not found (write the charset with: shadownet "
                        f"charset build --dataset-dir {source or dataset_dir}, or charset preset)")
    return Charset.load(dataset_dir)


def from_labels(dataset_dir: Path, case: str = "keep", layout: str | None = None, csv_delimiter: str = ";") -> Charset:
    """Every character of a dataset's labels (any layout, every split), in sorted order (``case="lower"``:
    lowercased). ``layout``: one of ``layouts.LAYOUTS``, or None to find it from the folder."""
    from .annotations import LineError
    from .layouts import LayoutOptions, detect, iter_samples, location

    found = detect(Path(dataset_dir), layout, LayoutOptions(csv_delimiter))
    if found.task != "recognition":
        raise DataError(f"{dataset_dir}: pages with text regions ({found.kind} layout), which need no charset; "
                        "a charset is built from a dataset of text lines")
    chars: set[str] = set()
    for part in found.parts:
        offsets, lines = found.index(part)
        for line, item in zip(lines.tolist(), iter_samples(found, part, offsets, lines), strict=True):
            if isinstance(item, LineError):
                raise DataError(f"{found.dataset_dir / location(part.name, line)}: {item}")
            chars.update(item.label.lower() if case == "lower" else item.label)
    if not chars:
        raise DataError(f"{dataset_dir}: no labels found to build a charset from")
    return Charset.from_text(chars)


def write(charset: Charset, out: Path, force: bool = False) -> None:
    """Save to ``out``; an existing charset with other classes is replaced only with ``force``."""
    if (out / CHAR_DICT_FILE).exists() and not force:
        try:
            existing = Charset.load(out)
        except ShadownetError:
            existing = None
        if existing != charset:
            raise ShadownetError(
                f"{out / CHAR_DICT_FILE} exists with other classes; replacing it changes every class index "
                "(models trained on it would decode wrongly). Use --force to replace it."
            )
    charset.save(out)


def _read_json_object(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(value, str):
            raise DataError(f"{path}: value of {key!r} must be a string, found {json.dumps(value)}")
    return obj


def _from_2019_variant(char_dict, ord_map, char_dict_path, ord_map_path):
    """Turn the 2019 ``"97_ord"`` / ``"0_index"`` maps into the 2018 shape."""
    expected = (
        'expected the 2018 format ({"97": "a"} and {"0": "97"}) or the 2019 format '
        '({"97_ord": "a"} and {"0_index": "97", "97_ord": "0"})'
    )
    plain_dict = {}
    for key, value in char_dict.items():
        if not key.endswith("_ord"):
            raise DataError(f"{char_dict_path}: key {key!r} mixes formats; {expected}")
        plain_dict[key[: -len("_ord")]] = value
    plain_map = {}
    reverse = {}
    for key, value in ord_map.items():
        if key.endswith("_index"):
            plain_map[key[: -len("_index")]] = value
        elif key.endswith("_ord"):
            reverse[key[: -len("_ord")]] = value
        else:
            raise DataError(f"{ord_map_path}: key {key!r} mixes formats; {expected}")
    for index, code in plain_map.items():
        if code in reverse and reverse[code] != index:
            raise DataError(
                f"{ord_map_path}: '{index}_index' maps to {code} but '{code}_ord' maps back to {reverse[code]}"
            )
    return plain_dict, plain_map


def _characters_from_maps(char_dict, ord_map, char_dict_path, ord_map_path) -> tuple[str, ...]:
    by_index: dict[int, str] = {}
    for key, code in ord_map.items():
        if not key.isdigit():
            raise DataError(f"{ord_map_path}: key {key!r} is not a class index (expected \"0\", \"1\", ...)")
        if code not in char_dict:
            raise DataError(f"{ord_map_path}: class {key} maps to {code!r}, which {char_dict_path.name} lacks")
        by_index[int(key)] = char_dict[code]
    for code, char in char_dict.items():
        if not code.isdigit() or len(char) != 1 or ord(char) != int(code):
            raise DataError(
                f"{char_dict_path}: entry {code!r}: {char!r} is not str(ord(c)) -> c"
                f" (expected {str(ord(char)) if len(char) == 1 else '<one character>'!r})"
            )
    expected = set(range(len(by_index)))
    if set(by_index) != expected:
        missing = sorted(expected - set(by_index))[:5]
        raise DataError(f"{ord_map_path}: class indices must be 0..{len(by_index) - 1} without gaps; missing {missing}")
    if len(char_dict) != len(by_index):
        unused = sorted(set(char_dict) - set(ord_map.values()), key=int)[:5]
        raise DataError(f"{char_dict_path}: characters without a class index in {ord_map_path.name}: {unused}")
    return tuple(by_index[i] for i in range(len(by_index)))
