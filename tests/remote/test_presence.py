"""Presence in bulk: listing the prefixes or a HEAD each, chosen by the remote's size."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpmstore.remote.layout import open_remote
from xpmstore.remote.presence import SAMPLE_LIMIT, PresenceMemo, listing_pays

from .conftest import RemoteFactory


def _ids(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}{n:062x}" for n in range(start, start + count)]


def test_listing_pays_against_a_small_remote_not_a_huge_one() -> None:
    # the benchmark's case: 5,000 objects (about 20 a prefix), 10,000 ids asked
    assert listing_pays(20, 256, 10_000)
    # 10 million objects: a prefix fills a page; a HEAD each instead of 10M keys read
    assert not listing_pays(SAMPLE_LIMIT, 256, 10_000)
    assert not listing_pays(SAMPLE_LIMIT, 256, 10_000_000)
    # 500 objects a prefix, 100 ids over 100 prefixes: 50,000 keys for 100 ids
    assert not listing_pays(500, 100, 100)


@given(st.integers(0, 5000), st.integers(1, 256), st.integers(1, 10**6))
def test_listing_never_reads_more_than_twenty_keys_per_id(per_prefix: int, prefixes: int,
                                                           wanted: int) -> None:
    if listing_pays(per_prefix, prefixes, wanted):
        assert per_prefix < SAMPLE_LIMIT and per_prefix * prefixes <= 20 * wanted


@pytest.mark.parametrize("crowd", [10, SAMPLE_LIMIT + 5])
def test_presence_is_exact_whichever_way_it_is_decided(workspaces: RemoteFactory,
                                                       crowd: int) -> None:
    remote = open_remote(workspaces("ws"))
    assert remote is not None
    stored = _ids("ab", crowd) + _ids("cd", 3)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: remote.backend.put_bytes(remote.object_key(i), b"{}"), stored))
    # 100 ids asked: half stored ones (all under "ab", the crowded prefix), half absent
    asked = _ids("ab", 50) + _ids("ab", 25, start=10**6) + _ids("ef", 25)
    assert remote.present(asked) == set(_ids("ab", 50)) & set(stored)
    assert remote.backend.count_upto("objects/ab/", SAMPLE_LIMIT) == min(crowd, SAMPLE_LIMIT)
    assert remote.backend.count_upto("objects/ef/", SAMPLE_LIMIT) == 0


def test_a_run_lists_a_prefix_once_its_questions_pay_for_it() -> None:
    memo = PresenceMemo()
    few = _ids("ab", 3)
    assert memo.needs_estimate(few) is None  # a small run: a HEAD each, no estimate
    assert memo.choose(few) == ([], few)
    memo.learn({}, {few[0]: True, few[1]: False, few[2]: False})
    assert memo.recall(few) == ({few[0]}, [])  # learned: not asked again
    many = _ids("cd", 70)
    assert memo.needs_estimate(many) == "cd"
    memo.per_prefix = 100  # a listing of "cd" costs 100 keys: 5 HEADs' worth
    assert memo.choose(many[:2]) == ([], many[:2])  # rent: 2 identifiers asked under "cd"
    assert memo.choose(many[2:5]) == (["cd"], [])  # buy: 5 asked, the listing pays
    memo.learn({"cd": {many[3]}}, {})
    assert memo.recall(many) == ({many[3]}, [])  # the listing answers every later question
    assert memo.needs_estimate(_ids("ef", 100)) is None  # estimated once per run


def test_a_prefix_that_fills_a_page_is_never_listed() -> None:
    memo = PresenceMemo()
    memo.per_prefix = SAMPLE_LIMIT
    asked = _ids("ab", 5000)
    assert memo.choose(asked) == ([], asked)


def test_an_answer_never_outgrows_what_the_remote_said() -> None:
    memo = PresenceMemo()
    asked = _ids("ab", 10) + _ids("cd", 10)
    memo.learn({"ab": set(_ids("ab", 2))}, {_ids("cd", 1)[0]: False})
    found, unknown = memo.recall(asked)
    assert found == set(_ids("ab", 2)) and unknown == sorted(_ids("cd", 10)[1:])
