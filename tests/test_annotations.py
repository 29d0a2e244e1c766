import pytest

from shadownet.data.annotations import AnnotationIndex, LineError, parse_line
from shadownet.errors import DataError


@pytest.mark.parametrize(
    "raw, expected",
    [
        # The seed's example: the leading slash is relative to the dataset directory.
        (b"/1/2/373_coley_14845.jpg coley", ("1/2/373_coley_14845.jpg", "coley")),
        (b"1/2/a.jpg coley", ("1/2/a.jpg", "coley")),
        # Everything after the first space is the label, spaces included.
        (b"a.jpg hello big world", ("a.jpg", "hello big world")),
        (b"a.jpg  lead", ("a.jpg", " lead")),
        # A tab makes it <path>\t<label>; the path may then contain spaces.
        ("dir x/a b.jpg\tnew york".encode(), ("dir x/a b.jpg", "new york")),
        (b"a.jpg\tx y\tz", ("a.jpg", "x y\tz")),
        # CRLF line endings and UTF-8 labels.
        ("a.jpg 中文\r".encode(), ("a.jpg", "中文")),
        (b"./x/../a.jpg ab", ("a.jpg", "ab")),
        # An empty label is returned (validation reports it with its line number).
        (b"a.jpg ", ("a.jpg", "")),
        (b"a.jpg\t", ("a.jpg", "")),
    ],
)
def test_parse_line(raw, expected):
    assert parse_line(raw) == expected


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r", b"\t "])
def test_blank_lines_are_ignored(raw):
    assert parse_line(raw) is None


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"just_a_path.jpg", "malformed_line"),
        (b" a.jpg label", "malformed_line"),
        (b"\tlabel", "malformed_line"),
        (b"/ label", "malformed_line"),
        (b"../secret.jpg label", "path_outside_dataset"),
        (b"/a/../../b.jpg label", "path_outside_dataset"),
        (b"a.jpg caf\xe9", "invalid_utf8"),
    ],
)
def test_malformed_lines(raw, code):
    with pytest.raises(LineError) as err:
        parse_line(raw)
    assert err.value.code == code


def test_index_keeps_true_line_numbers(tmp_path):
    (tmp_path / "Train").mkdir()
    content = "\ufeff/a.jpg one\n\n   \nb.jpg two words\r\nbroken\nc.jpg\tthree\n"
    (tmp_path / "Train" / "sample.txt").write_text(content, encoding="utf-8")
    index = AnnotationIndex(tmp_path, "Train/sample.txt")
    items = list(index)
    assert len(index) == 4
    assert [int(n) for n in index.line_numbers] == [1, 4, 5, 6]
    assert items[0][1].path == "a.jpg" and items[0][1].label == "one"  # BOM dropped
    assert items[1][1].label == "two words" and items[1][1].where == "Train/sample.txt:4"
    assert isinstance(items[2][1], LineError) and items[2][1].code == "malformed_line"
    assert items[3][1].label == "three"
    # Random access gives the same samples as the sequential pass.
    assert index.read(3) == items[3][1]


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DataError, match="Test/sample.txt"):
        AnnotationIndex(tmp_path, "Test/sample.txt")
