"""FormSpec as a cache key: its hash is computed once, equal specs hash alike, and a copy recomputes it."""

from __future__ import annotations

import copy
import dataclasses
import pickle

from mailbot.forms.layout import APPLICATION


def test_equal_specs_hash_alike_and_a_changed_one_differs():
    twin = dataclasses.replace(APPLICATION)
    assert twin is not APPLICATION and twin == APPLICATION and hash(twin) == hash(APPLICATION)
    other = dataclasses.replace(APPLICATION, title=APPLICATION.title + "（控）")
    assert other != APPLICATION and hash(other) != hash(APPLICATION)


def test_the_hash_is_kept_but_not_carried_into_a_copy_or_a_pickle():
    expected = hash((APPLICATION.name, APPLICATION.title, APPLICATION.header, APPLICATION.sections,
                     APPLICATION.pledges, APPLICATION.seal))
    assert hash(APPLICATION) == expected and APPLICATION.__dict__["_hash"] == expected
    for twin in (pickle.loads(pickle.dumps(APPLICATION)), copy.deepcopy(APPLICATION)):
        assert "_hash" not in twin.__dict__  # another process's string hashes differ
        assert twin == APPLICATION and hash(twin) == expected
