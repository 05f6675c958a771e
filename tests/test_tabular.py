"""Tabular evaluator: loading, lookups, query counting, and one-line errors for bad records."""
from __future__ import annotations

import json

import pytest

from dnas.errors import ConfigError, DataError, DnasError
from dnas.evaluators import EvalResult, TabularEvaluator, make_evaluator
from dnas.genotype import PUBLISHED
from dnas.spaces.nb201 import NB201Arch

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
B = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"


def _write(tmp_path, obj, name="r.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_builtin_table_lookup_and_query_counting():
    ev = make_evaluator("tabular:nb201_cifar10")
    assert isinstance(ev, TabularEvaluator) and len(ev) == 725 and ev.space == "nb201"
    r = ev.evaluate(A)
    assert isinstance(r, EvalResult) and r.accuracy == 91.36 and not r.cached
    assert r.cost["params_m"] > 0 and r.cost["flops_m"] > 0
    assert ev.evaluate(NB201Arch.parse(A), budget=12).cached  # same arch, other form
    ev.evaluate(B)
    assert ev.queries == 3 and ev.unique_queries == 2
    assert ev.best() == (NB201Arch.parse(A), 91.36)
    assert all(isinstance(a, NB201Arch) for a in ev.archs()) and len(set(ev.archs())) == 725


def test_unknown_arch_is_a_clear_error():
    ev = make_evaluator("tabular:nb201_cifar10")
    missing = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert missing not in ev
    with pytest.raises(DataError, match="not among its 725 records"):
        ev.evaluate(missing)
    assert ev.queries == 0


def test_darts_style_records(tmp_path):
    g1, g2 = PUBLISHED["DARTS_V2"], PUBLISHED["PC_DARTS_cifar"]
    recs = [{**{k: v for k, v in g.to_dict().items() if k in ("normal", "normal_concat", "reduce", "reduce_concat")},
             "val_accuracy": acc} for g, acc in ((g1, 97.2), (g2, 97.4))]
    ev = make_evaluator(f"tabular:{_write(tmp_path, recs)}")
    assert ev.space == "darts" and len(ev) == 2
    assert ev.evaluate(g1).accuracy == 97.2  # meta differs from the record, still found
    assert ev.evaluate(g2.to_dict()).accuracy == 97.4
    with pytest.raises(DataError, match="not among"):
        ev.evaluate(PUBLISHED["DARTS_V1"])


@pytest.mark.parametrize(
    "records, words",
    [
        ("[{", "invalid JSON at line 1"),
        ({"arch": A}, "non-empty JSON list"),
        ([], "non-empty JSON list"),
        ([{"arch": A, "val_accuracy": 90}, 3], "[1]: expected a JSON object"),
        ([{"arch": A, "val_accuracy": 90}, {"arch": B}], "[1].val_accuracy: missing"),
        ([{"arch": A, "val_accuracy": "90"}], "[0].val_accuracy: expected a finite number"),
        ([{"arch": A, "val_accuracy": 190}], "[0].val_accuracy: 190 out of range"),
        ([{"arch": A, "val_accuracy": 90, "params_m": -1}], "[0].params_m: -1 out of range"),
        ([{"arch": A.replace("nor_conv_1x1", "conv9"), "val_accuracy": 90}], "[0].arch: nb201 arch"),
        ([{"arch": A, "val_accuracy": 90}, {"arch": A, "val_accuracy": 91}], "[1].arch: duplicate of record 0"),
        ([{"val_accuracy": 90}], "[0]: needs 'arch'"),
        ([{"arch": A, "val_accuracy": 90}, {**PUBLISHED["DARTS_V2"].to_dict(), "val_accuracy": 97}], "mixes"),
    ],
)
def test_malformed_records_name_index_and_field(tmp_path, records, words):
    p = _write(tmp_path, records)
    with pytest.raises(DataError) as e:
        TabularEvaluator(p)
    assert words in str(e.value) and "\n" not in str(e.value) and str(p) in str(e.value)


def test_make_evaluator_spec_errors(tmp_path):
    with pytest.raises(ConfigError, match="not 'kind:arg'"):
        make_evaluator("nb201_cifar10")
    with pytest.raises(ConfigError, match="unknown evaluator 'oracle'"):
        make_evaluator("oracle:x")
    with pytest.raises(DnasError, match="no such file"):
        make_evaluator(f"tabular:{tmp_path / 'nope.json'}")
