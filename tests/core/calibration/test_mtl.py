"""The MTL reader (text, XML, JSON) against the real files and malformed text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raster_clustering.core.calibration import mtl
from raster_clustering.core.errors import MetadataError


@pytest.mark.shared_data
def test_txt_and_json_of_one_scene_hold_identical_values(shared_data):
    txt = mtl.read_metadata_tree(shared_data / "landsat8/LC81060712016134LGN00_MTL.txt")
    jsn = mtl.read_metadata_tree(shared_data / "landsat8/LC81060712016134LGN00_MTL.json")
    txt_values = {(path, key): value for path, key, value in txt.walk()}
    json_values = {(path, key): value for path, key, value in jsn.walk()}
    assert txt_values.keys() == json_values.keys()
    numbers_compared = 0
    for place, text in txt_values.items():
        try:
            number = float(text)
        except ValueError:
            assert json_values[place] == text, place
            continue
        assert float(json_values[place]) == number, place
        numbers_compared += 1
    assert numbers_compared > 150
    # The JSON holds numbers, the text writes them another way: compare as numbers.
    rescaling = ("L1_METADATA_FILE", "RADIOMETRIC_RESCALING")
    assert txt_values[rescaling, "RADIANCE_MULT_BAND_1"] == "1.2296E-02"
    assert json_values[rescaling, "RADIANCE_MULT_BAND_1"] == "0.012296"


def test_tree_navigation_and_missing_keys():
    tree = mtl.parse_mtl_text(
        'GROUP = LANDSAT_METADATA_FILE\n  GROUP = A\n    GROUP = B\n      X = "1.5"\n'
        "    END_GROUP = B\n  END_GROUP = A\nEND_GROUP = LANDSAT_METADATA_FILE\nEND\n",
        source="mem.txt",
    )
    assert tree.group("B").number("X") == 1.5
    assert tree.group("B").path == ("LANDSAT_METADATA_FILE", "A", "B")
    assert tree.find_group("C") is None
    assert list(tree.walk()) == [(("LANDSAT_METADATA_FILE", "A", "B"), "X", "1.5")]
    with pytest.raises(MetadataError, match="mem.txt.*no key Y"):
        tree.group("B")["Y"]
    with pytest.raises(MetadataError, match="mem.txt has no group C"):
        tree.group("C")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GROUP = L1_METADATA_FILE\n  GROUP = A\n    X = 1\n", "truncated"),
        ("GROUP = L1_METADATA_FILE\n  X = 1\n  END_GROUP = A\n", "does not close"),
        ("X = 1\n", "outside any GROUP"),
        ("GROUP = L1_METADATA_FILE\n  this is prose\nEND_GROUP = L1_METADATA_FILE", "line 2"),
        ("\n\n", "no GROUP"),
        ("GROUP = A\n" * (mtl.MAX_GROUP_DEPTH + 5), "nested"),
    ],
)
def test_malformed_text_is_a_metadata_error(text, message):
    with pytest.raises(MetadataError, match=message):
        mtl.parse_mtl_text(text, source="bad.txt")


def test_non_numeric_value_names_key_and_file():
    tree = mtl.parse_mtl_text(
        "GROUP = L1_METADATA_FILE\n  SUN_ELEVATION = high\nEND_GROUP = L1_METADATA_FILE\n",
        source="odd_MTL.txt",
    )
    with pytest.raises(MetadataError, match="SUN_ELEVATION.*odd_MTL.txt"):
        tree.number("SUN_ELEVATION")


_MTL_TOKENS = st.sampled_from(
    [
        "GROUP = L1_METADATA_FILE", "GROUP = LANDSAT_METADATA_FILE", "GROUP = A",
        "END_GROUP = A", "END_GROUP = L1_METADATA_FILE", "END", "X = 1", 'Y = "q', "Z = (1,",
        "2)", "=", "", "\x00\x00", "SUN_ELEVATION = -3",
    ]
)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(_MTL_TOKENS, st.text(max_size=30)), max_size=40))
def test_text_parser_on_garbled_text_raises_only_metadata_error(lines):
    try:
        tree = mtl.parse_mtl_text("\n".join(lines), source="random.txt")
    except MetadataError:
        return
    assert isinstance(tree, mtl.MetadataTree)
