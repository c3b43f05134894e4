"""Which identifiers the remote holds: the choice, per 2-hex prefix, between listing the prefix
and a HEAD for each identifier, and what one experiment learned of the remote (docs/remote.md,
"Presence in bulk"; docs/scale.md, section 4, has the arithmetic).  Pure: the requests are sent
by :meth:`xpmstore.remote.layout.Remote.present`.

**The cost model**, in HEADs: a HEAD costs one request; listing a prefix of ``K`` keys costs
``ceil(K / 1000)`` requests (S3 pages) but mostly the parsing of its keys, about one HEAD's
worth per :data:`LIST_KEYS_PER_ID` keys.  ``K`` is estimated once, from one page of one prefix
(``Backend.count_upto``); a prefix that fills the page (more than about 256,000 objects in the
remote) is never listed: a HEAD each is then far cheaper than reading every key.

**A run's memory** (:class:`PresenceMemo`): an experiment asks in batches (one per planning
batch, or one per submit in a dry run), so it keeps what it learned — the size estimate, the
prefixes it listed (with the identifiers they hold) and each identifier's HEAD answer — and a
question asks the remote only about identifiers it has not learned.  A prefix is listed once the
identifiers this run asked under it make the listing pay (a rent-or-buy rule: HEADs until their
count reaches the listing's cost, then the listing, never more than about twice the cheaper of
the two over the run), and answers every later question under it for free.

**What the answers mean.**  *Present* means the remote held the object when it was asked; *absent*
that it did not.  Neither is asked again in the same run: an object a teammate pushes after the
question is missed for this run only (its job runs here, and its push finds it present); one a
``gc --remote`` deletes after the question is found gone by the pull, and its job runs here.  No
identifier is ever answered present unless the remote listed it or answered its HEAD.
Thread-safe.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

__all__ = ["BULK_THRESHOLD", "LIST_KEYS_PER_ID", "SAMPLE_LIMIT", "PresenceMemo", "listing_pays",
           "prefix_of"]

BULK_THRESHOLD = 64
"""Until a run (or a call) has asked about this many identifiers, presence is a HEAD each."""
SAMPLE_LIMIT = 1000
"""Keys counted in one prefix to estimate how full the prefixes are (one S3 listing page)."""
LIST_KEYS_PER_ID = 20
"""Listing wins while it reads at most this many keys per identifier asked about (a listing page
is parsed under the GIL, HEADs run on a thread pool: docs/scale.md has the arithmetic)."""


def prefix_of(identifier: str) -> str:
    """The 2-hex prefix (the folder of ``objects/``) that holds ``identifier``."""
    return identifier[:2]


def listing_pays(per_prefix: int, prefixes: int, wanted: int) -> bool:
    """Whether listing ``prefixes`` 2-hex prefixes of about ``per_prefix`` objects each is
    cheaper than a HEAD for each of ``wanted`` identifiers: it is while the listing reads at
    most LIST_KEYS_PER_ID keys per identifier, and never once a prefix fills a page
    (``per_prefix`` = SAMPLE_LIMIT: more than 256,000 objects, say 10 million, where a HEAD
    each is far cheaper than reading every key).  Pure."""
    if per_prefix >= SAMPLE_LIMIT:
        return False
    return per_prefix * prefixes <= LIST_KEYS_PER_ID * wanted


class PresenceMemo:
    """What one run learned of the remote's presence (see the module doc).  A fresh memo per
    question gives a one-shot answer; an experiment keeps one for its whole run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._present: set[str] = set()
        self._absent: set[str] = set()  # by HEAD; a listed prefix answers for its own ids
        self._listed: set[str] = set()
        self._asked: Counter[str] = Counter()  # prefix → identifiers asked under it
        self._total = 0
        self.per_prefix: int | None = None
        """Keys in a prefix, estimated once (None until the run asked about BULK_THRESHOLD)."""

    def recall(self, wanted: Iterable[str]) -> tuple[set[str], list[str]]:
        """(those of ``wanted`` known present, those not learned yet, sorted)."""
        with self._lock:
            found, unknown = set(), []
            for identifier in set(wanted):
                if identifier in self._present:
                    found.add(identifier)
                elif identifier not in self._absent and prefix_of(identifier) not in self._listed:
                    unknown.append(identifier)
            return found, sorted(unknown)

    def needs_estimate(self, unknown: list[str]) -> str | None:
        """The prefix to count, once, when asking about ``unknown`` brings the run to
        BULK_THRESHOLD identifiers: the one holding most of them; else None."""
        with self._lock:
            if self.per_prefix is not None or self._total + len(unknown) < BULK_THRESHOLD:
                return None
        return Counter(map(prefix_of, unknown)).most_common(1)[0][0]

    def choose(self, unknown: list[str]) -> tuple[list[str], list[str]]:
        """Note that ``unknown`` (not learned yet) are asked about; returns (the prefixes to list,
        the identifiers to HEAD): a prefix is listed once the identifiers asked under it in this
        run make it pay (:func:`listing_pays`), by the size estimate."""
        with self._lock:
            self._total += len(unknown)
            by_prefix: dict[str, list[str]] = {}
            for identifier in unknown:
                by_prefix.setdefault(prefix_of(identifier), []).append(identifier)
            listings, heads = [], []
            for prefix, identifiers in sorted(by_prefix.items()):
                self._asked[prefix] += len(identifiers)
                if self.per_prefix is not None and listing_pays(self.per_prefix, 1,
                                                                self._asked[prefix]):
                    listings.append(prefix)
                else:
                    heads.extend(identifiers)
            return listings, heads

    def learn(self, listed: dict[str, set[str]], headed: dict[str, bool]) -> None:
        """Keep the answers: ``listed`` maps each prefix listed to the identifiers it holds,
        ``headed`` each identifier asked by HEAD to whether it is there."""
        with self._lock:
            for prefix, identifiers in listed.items():
                self._listed.add(prefix)
                self._present.update(identifiers)
            for identifier, here in headed.items():
                (self._present if here else self._absent).add(identifier)
