import json

import pytest

from conftest import REPO, Dataset, run_cli
from shadownet.data.charset import PRESETS, Charset
from shadownet.errors import DataError


def write_maps(folder, char_dict, ord_map):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "char_dict.json").write_text(json.dumps(char_dict, ensure_ascii=False), encoding="utf-8")
    (folder / "ord_map.json").write_text(json.dumps(ord_map), encoding="utf-8")
    return folder


def test_blank_is_one_past_the_last_character():
    charset = Charset.from_preset("digits_lower")
    assert charset.size == 36
    assert charset.blank_index == 36
    assert charset.num_classes == 37
    assert charset.encode("09az") == [0, 9, 10, 35]
    # The blank never decodes to a character, nor does anything past it.
    assert charset.decode([10, 36, 11, 37, 12]) == "abc"


def test_class_index_is_the_ord_map_key_not_the_file_order(tmp_path):
    folder = write_maps(tmp_path, {"97": "a", "98": "b", "32": " "}, {"2": "97", "0": "32", "1": "98"})
    charset = Charset.load(folder)
    assert charset.characters == (" ", "b", "a")
    assert charset.encode("ab a") == [2, 1, 0, 2]
    assert charset.blank_index == 3


def test_round_trip_with_space_and_chinese(tmp_path):
    charset = Charset(("中", " ", "a", "文", "1"))
    charset.save(tmp_path)
    loaded = Charset.load(tmp_path)
    assert loaded == charset
    assert loaded.encode("a 中文") == [2, 1, 0, 3]
    assert loaded.decode(loaded.encode("中文 a1")) == "中文 a1"
    char_dict = json.loads((tmp_path / "char_dict.json").read_text(encoding="utf-8"))
    ord_map = json.loads((tmp_path / "ord_map.json").read_text(encoding="utf-8"))
    assert char_dict[str(ord("中"))] == "中"
    assert char_dict["32"] == " "
    assert ord_map == {"0": str(ord("中")), "1": "32", "2": "97", "3": str(ord("文")), "4": "49"}
    # Written as UTF-8 text, not \\u escapes, and keys in numeric order (deterministic files).
    assert "中" in (tmp_path / "char_dict.json").read_text(encoding="utf-8")
    assert list(char_dict) == sorted(char_dict, key=int)


def test_2019_variant_reads_as_the_same_charset(tmp_path):
    old = write_maps(tmp_path / "2018", {"97": "a", "48": "0", "32": " "}, {"0": "48", "1": "97", "2": "32"})
    new = write_maps(
        tmp_path / "2019",
        {"97_ord": "a", "48_ord": "0", "32_ord": " "},
        {"0_index": "48", "1_index": "97", "2_index": "32", "48_ord": "0", "97_ord": "1", "32_ord": "2"},
    )
    assert Charset.load(new) == Charset.load(old) == Charset(("0", "a", " "))


@pytest.mark.parametrize(
    "char_dict, ord_map, message",
    [
        ({"97": "a"}, {"0": "98"}, "class 0 maps to '98'"),
        ({"97": "a", "98": "b"}, {"0": "97", "2": "98"}, "without gaps"),
        ({"97": "b"}, {"0": "97"}, "is not str(ord(c))"),
        ({"97": "a", "98": "b"}, {"0": "97"}, "characters without a class index"),
        ({"97_ord": "a"}, {"0": "97"}, "mixes formats"),
        ({"97_ord": "a"}, {"0_index": "97", "97_ord": "3"}, "maps back to 3"),
        ({"97": "a"}, {"zero": "97"}, "is not a class index"),
        ({"97": 97}, {"0": "97"}, "must be a string"),
    ],
)
def test_inconsistent_maps_are_rejected_with_the_file_named(tmp_path, char_dict, ord_map, message):
    write_maps(tmp_path, char_dict, ord_map)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        Charset.load(tmp_path)
    assert "char_dict.json" in str(err.value) or "ord_map.json" in str(err.value)


def test_malformed_json_names_file_and_line(tmp_path):
    write_maps(tmp_path, {"97": "a"}, {"0": "97"})
    (tmp_path / "ord_map.json").write_text('{\n  "0": "97",\n  "1": \n}\n')
    with pytest.raises(DataError, match=r"ord_map.json:4: malformed JSON"):
        Charset.load(tmp_path)
    (tmp_path / "ord_map.json").unlink()
    with pytest.raises(DataError, match="ord_map.json: file not found"):
        Charset.load(tmp_path)


def test_from_text_is_sorted_whatever_the_input_order():
    a = Charset.from_text("zebra 42")
    b = Charset.from_text(reversed("zebra 42"))
    assert a == b
    assert a.characters == (" ", "2", "4", "a", "b", "e", "r", "z")


def test_shipped_dictionaries_match_the_presets():
    assert Charset.load(REPO / "data") == Charset.from_preset("digits_lower")
    ascii95 = Charset.load(REPO / "data" / "presets" / "ascii95")
    assert ascii95 == Charset.from_preset("ascii95")
    assert ascii95.size == 95 and ascii95.characters[0] == " " and ascii95.characters[-1] == "~"
    assert len(PRESETS["digits_lower"]) == 36


def test_cli_charset_build_is_sorted_and_refuses_to_clobber(tmp_path):
    ds = Dataset(tmp_path / "ds", charset=Charset(("q",)))
    ds.add("Train", "/a.jpg Zebra 2")
    ds.add("Train", "b.jpg\tcafé")
    ds.add("Test", "c.jpg 中文")
    ds.write()
    refused = run_cli("charset", "build", "--dataset-dir", ds.root)
    assert refused.returncode != 0
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr

    run_cli("charset", "build", "--dataset-dir", ds.root, "--force", check=True)
    built = Charset.load(ds.root)
    assert built.characters == tuple(sorted(set("Zebra 2café中文")))
    first = (ds.root / "ord_map.json").read_bytes()
    run_cli("charset", "build", "--dataset_dir", ds.root, "--force", check=True)
    assert (ds.root / "ord_map.json").read_bytes() == first

    out = tmp_path / "lower"
    run_cli("charset", "build", "--dataset-dir", ds.root, "--case", "lower", "--out", out, check=True)
    assert "Z" not in Charset.load(out) and "z" in Charset.load(out)


def test_cli_charset_preset(tmp_path):
    run_cli("charset", "preset", "ascii95", "--out", tmp_path, check=True)
    assert Charset.load(tmp_path) == Charset.from_preset("ascii95")
    bad = run_cli("charset", "preset", "klingon", "--out", tmp_path / "x")
    assert bad.returncode != 0 and "unknown charset preset 'klingon'" in bad.stderr
