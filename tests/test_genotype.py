import json

import pytest

from dnas.errors import GenotypeError
from dnas.genotype import PUBLISHED, Genotype, load_genotype


def test_published_genotypes_are_valid_and_round_trip():
    for name, g in PUBLISHED.items():
        g.validate()
        back = Genotype.from_json(g.to_json())
        assert back == g, name
        assert back.hash() == g.hash()
        assert len(g.normal) == 8 and list(g.normal_concat) == [2, 3, 4, 5]


def test_published_facts_match_reference_code():
    # spot checks against the released genotypes.py files
    assert PUBLISHED["DARTS_V2"].normal[-1] == ("dil_conv_3x3", 2)
    assert PUBLISHED["DARTS_V1"].reduce[-1] == ("avg_pool_3x3", 0)
    assert PUBLISHED["PC_DARTS_cifar"].reduce[0] == ("sep_conv_5x5", 1)
    assert PUBLISHED["PC_DARTS_image"].normal[-1] == ("dil_conv_5x5", 4)
    assert PUBLISHED["PC_DARTS_image"].reduce[3] == ("max_pool_3x3", 1)


def test_hash_is_stable_and_ignores_meta():
    g = PUBLISHED["DARTS_V2"]
    assert g.hash() == "77a0078a2018789b"  # changing this breaks every stored result: don't
    assert g.with_meta(seed=3).hash() == g.hash()
    assert PUBLISHED["DARTS_V1"].hash() != g.hash()


def test_file_round_trip_and_load_by_path_and_dir(tmp_path):
    g = PUBLISHED["PC_DARTS_cifar"].with_meta(method="test")
    p = tmp_path / "run" / "genotype.json"
    g.save(p)
    assert load_genotype(p) == g
    assert load_genotype(p.parent).meta["method"] == "test"
    assert load_genotype("DARTS_V2") is PUBLISHED["DARTS_V2"]


def _d(**changes):
    d = PUBLISHED["DARTS_V2"].to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"normal": [["sep_conv_9x9", 0]] + PUBLISHED["DARTS_V2"].to_dict()["normal"][1:]}, "genotype.normal[0]: unknown op 'sep_conv_9x9'"),
        ({"normal": PUBLISHED["DARTS_V2"].to_dict()["normal"][:-1] + [["skip_connect", 5]]}, "genotype.normal[7]: input 5 out of range"),
        ({"reduce": PUBLISHED["DARTS_V2"].to_dict()["reduce"][:7]}, "genotype.reduce: needs 2 edges per intermediate node"),
        ({"normal_concat": [2, 3, 9]}, "genotype.normal_concat: index 9 out of range"),
        ({"version": 99}, "genotype.version: file is version 99"),
        ({"colour": "blue"}, "unknown field(s) colour"),
        ({"normal": [["sep_conv_3x3"]] * 8}, "genotype.normal[0]: expected [op_name, input_index]"),
    ],
)
def test_validation_errors_name_the_field(changes, needle):
    with pytest.raises(GenotypeError) as e:
        Genotype.from_dict(_d(**changes))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_field_and_bad_json(tmp_path):
    d = _d()
    del d["reduce_concat"]
    with pytest.raises(GenotypeError, match="reduce_concat: missing required field"):
        Genotype.from_dict(d)
    p = tmp_path / "g.json"
    p.write_text("{not json")
    with pytest.raises(GenotypeError, match="invalid JSON at line 1"):
        load_genotype(p)
    with pytest.raises(GenotypeError, match="not a published name"):
        load_genotype("NOPE")


def test_json_is_plain_data():
    d = json.loads(PUBLISHED["DARTS_V1"].to_json())
    assert d["format"] == "dnas.genotype" and d["version"] == 1 and d["space"] == "darts"
    assert d["normal"][0] == ["sep_conv_3x3", 1]
