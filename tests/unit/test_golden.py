"""Golden identifiers: any change of the encoding must break this test.

NEVER update these values without bumping ``xpmstore.core.identifier.SCHEME``: every stored result
is found by its identifier, so a silent change of the encoding orphans every workspace and remote.
If this test fails, the change to the encoding is the bug.
"""

from __future__ import annotations

import pytest

from xpmstore import Config, Constant, Meta, Param
from xpmstore.core.identifier import SCHEME, cache_identifier, from_params
from xpmstore.core.params import params_of

from .. import golden_configs

# Generated once with scheme 1, then hard-coded. Do not regenerate: bump SCHEME instead.
GOLDEN = {
    "empty":
        "e9735d71372878ecfbb0596a4fe511e44d859780ad45f09307ce724227fdd3cb",
    "scalars_defaults":
        "d13619292b20b992f1cfaa1e213671cb3040d1889c5f32ebf8c44c00e0765439",
    "scalars_defaults_spelled_out":
        "d13619292b20b992f1cfaa1e213671cb3040d1889c5f32ebf8c44c00e0765439",
    "int_negative":
        "53d57ab7e2696ab4ef5e46056b91c5fdd61d88c3b719ea99608a867d054d7341",
    "int_big":
        "f6147fb14a5bfb4cc9d37c0e359f2fc3694fc587ef0bac0a2c368b0eb7b1af1f",
    "float":
        "0122460b3f107538d8b3fc160957fd32da0671d2fc03edbde7336ab2c0c08f78",
    "float_negative_zero":
        "69dbe8d5b6de54b224e9f8263e62c570ca48f62eee3b0eed5da99d959e58dfba",
    "float_from_int":
        "7bf8a45fa5d30c074d51c323713d6dcd05fb3a5b41ce3b15cd97310bbcd5f811",
    "bool":
        "4fefe9fb21d92cb7a59ee770862b6b1769d433444b94aa76ba982c692d625fec",
    "str_unicode":
        "6d04d941257da100a044aab238334719d9c2aae35362793cb40f695e2248aca1",
    "bytes":
        "92c99399b9e2ac4938c79721734364f0aaa3be5c18a251d828528fd3630cc419",
    "optional":
        "70b41f92e31c5844e510f9a35058e8482a3ddb1c6fde8df53c2673a850f22c52",
    "literal":
        "b01b73e1b580c76049e416017d0e5e9bfee77057021b8d67989be16dc9a90e00",
    "any_int":
        "81948c321117663696c56bf72dbd0d920a496105d43aebcd3efb1ab0b998cc22",
    "any_float":
        "3ff0bdfc6c918cd5bf8329ce17d012696cbb399753cc66892c316154ac5e9325",
    "any_bool":
        "b2a7ad8a6667bec1877676275eeb56ff0313bf68e1cd6191a5fde58c752939ea",
    "any_str":
        "3817d36aca57e99055b8901d44e913651ccfe4c419b87a0916bc1bda7a378311",
    "any_bytes":
        "c32eab356816cacb82844a22d539ac12f5cbaae76bbba99a466fc31d98cdb2af",
    "any_nan":
        "c8e2b6d344b601d32f3f5d1155c626bc2465399e685ebb10bb5faa2e876a5eec",
    "any_infinity":
        "065365a20b8f6177c04df3f732c760aece52ecca0a82d198313196f0ef1eb832",
    "any_list":
        "c55f5924f9daa72de0c1300ffb4ae84e0d34b5f13298eaf5a59483692ce737f3",
    "any_tuple":
        "0daf2d1d000dc22275d8a6d8fd2c8a0bf9ac7c696a0084161ee5b0650a45c7c2",
    "any_set":
        "edfdfe8fb2b56f8b014d300ae34ff8e8c7d33111a8bd043534fbdb572d383470",
    "any_dict":
        "ca2834b21ba34c1d689e053f84388acd93ad30c6d6d14d22d2642563c06fc6d3",
    "any_nested":
        "ec5d7df7d4ac5da0b8f447b4a1c7e2747889780fc807fc8075652270e66f18ff",
    "union_str":
        "acf04655ef5ce4c0a769c0eeed1a23a18d287baf3800526b5e8415b48f57b563",
    "union_float":
        "19a49526e1255b6778c8a796cff120b23c8796901f09149538f44480383fc463",
    "containers":
        "e51dcd69714dc62703cf4396ce1fca3cfcf16ecb10682b602dda5ee743dbfb7c",
    "enum":
        "df82a4f16abe223d5705141bf55074413d0dfba59206df71db15e48b2b9d5961",
    "enum_default":
        "e467d0b70c6b7a181bba34d31d0350fcefb33973cda719f545ffcd7e6f655c26",
    "constant_default":
        "71c8649b9db68d087fc35261e71c57a5b27f28e352713acd1457affaef5d3f12",
    "meta_and_tags_left_out":
        "9652216e19ad4bb27dbf4d6ac33193782cb76d58b798619169805d50e28c6b76",
    "nested_config":
        "b47121d33cf9cbd189381f2a04b7b5201fe7de0d9b8e0668542efaac82acf655",
    "task":
        "42fede396d73999f05b8413612983cf3b14fa95e114d9d71463eeb808951c12b",
    "evaluate":
        "e55b55034c48050215b3e20ca7cb1c30df1fe954a0d639a58a4af1c6dc9c1b66",
    "evaluate_marked":
        "e55b55034c48050215b3e20ca7cb1c30df1fe954a0d639a58a4af1c6dc9c1b66",
    "marked_output":
        "a81d67a979969eb0733f544649bb9806861990310a0a5e7a504c459a217a959f",
    "holds_marked_output":
        "7cce373fa4dd51477ac4826ad77a534c325a7c3784b894af83d85259460cf42d",
    "task_path":
        "9b2d448465a3fc8f55c2e92ce6659614ba6ec5897767cad1e7d5c086406ccea2",
    "nested_task_path":
        "a3b48b6f41f88447180c7e93af9823d39b6ffaa4c293a0a3190d3732a949e9a4",
    "workspace_path":
        "abb29425ff5ce522d40db732497c0df5bf0ba4df9e5947f645bb2657c096c9f3",
    "input_file":
        "890aaea77734e80a40282aadc2f34b23a1697effaec130570e34b187084dddca",
    "input_directory":
        "ce7761d7a726ef1c6b85941d85aff75adb7f7d12db248ba5cf4fc7cdc8e2840c",
    "random_fold":
        "8bd80383bf7c8efeab09d84e5b5a4264a13cb416703cb9f799ff8f855652be2c",
    "random_fold_output":
        "f6a18217fb798af7823c12bc699b9625a68e6367a6d2107c37e6312df6ff2d7d",
}

GOLDEN_CACHE_ENTRY = "4749564a45b7a3d1c4482007eacdb499d2a9d298ac1c8320c248c6c40369d8ef"
"""``cache_identifier(<identifier of golden.Empty()>, "terms.npy")``."""

SAME = [
    ("scalars_defaults", "scalars_defaults_spelled_out"),  # defaults are left out
    ("evaluate", "evaluate_marked"),  # a task enters by identifier, marked or not
]


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    return golden_configs.build(tmp_path_factory.mktemp("golden"))


def test_scheme_is_still_one():
    assert SCHEME == 1, "a new scheme needs new golden identifiers (keep the old ones too)"


def test_the_golden_set_is_complete(golden):
    assert set(golden) == set(GOLDEN)
    assert len(GOLDEN) >= 30


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_identifier(golden, name):
    assert golden[name].__identifier__ == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_identifier_from_params(golden, name):
    assert from_params(params_of(golden[name])["identity"]) == GOLDEN[name]


def test_golden_identifiers_do_not_depend_on_where_inputs_live(tmp_path):
    again = golden_configs.build(tmp_path / "elsewhere" / "deeper")
    assert {name: config.__identifier__ for name, config in again.items()} == GOLDEN


def test_golden_identifiers_are_distinct_but_for_the_equal_ones():
    for first, second in SAME:
        assert GOLDEN[first] == GOLDEN[second]
    merged = {name for pair in SAME for name in pair[1:]}
    values = [value for name, value in GOLDEN.items() if name not in merged]
    assert len(values) == len(set(values))


def test_golden_cache_identifier():
    assert cache_identifier(golden_configs.Empty().__identifier__, "terms.npy") == (
        GOLDEN_CACHE_ENTRY
    )


class Point(Config):
    """The worked example of docs/identifiers.md."""

    __xpmid__ = "docs.Point"
    x: Param[int] = 0
    label: Param[str]
    version: Constant[int] = 1
    verbose: Meta[bool] = False


def test_the_worked_example_of_the_documentation():
    assert Point(label="a", x=-1, verbose=True).__identifier__ == (
        "c41d45f623296d0953f628a8f2e16dab2ea7cca21d9de3722e9ff8a2a1866766"
    )
    assert Point(label="a").__identifier__ == Point(label="a", x=0).__identifier__ == (
        "e81c75811420c9d012d9f261f0dbf4f05625233374ff3b7a059406281287f6b2"
    )
