"""The transformers backend's prefix cache: reused keys/values change no output, only the work."""

import pytest

from imaginarium.models.backend import Constraint, GenerationRequest
from imaginarium.models.prefix_cache import PrefixCache

SYSTEM = "You are learning to use a tool. " * 20


def conversation(turns: int, question: str) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}]
    for k in range(turns):
        messages += [{"role": "user", "content": f"{question} (turn {k})"},
                     {"role": "assistant", "content": f"Answer number {k} to {question}."}]
    return [*messages, {"role": "user", "content": f"{question} (last)"}]


def requests():
    schema = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 20}}, "required": ["q"],
              "additionalProperties": False}
    out = []
    for question in ("weather in Oslo", "rate of EUR", "books by Le Guin"):
        for turns in (0, 1, 2):
            out.append(GenerationRequest(messages=conversation(turns, question), max_tokens=24, seed=turns,
                                         constraint=Constraint.json(schema) if turns % 2 else None))
    return out


@pytest.fixture(scope="module")
def backends(tiny_model):
    from imaginarium.models.transformers import TransformersBackend

    return (TransformersBackend(str(tiny_model), prefix_cache_bytes=0),
            TransformersBackend(str(tiny_model), prefix_cache_bytes=1 << 26))


def test_outputs_are_the_same_with_and_without_the_prefix_cache(backends):
    plain, cached = backends
    expected = [c.text for c in plain.generate(requests())]
    first = [c.text for c in cached.generate(requests()[:4])]  # warms the cache with shared prefixes
    again = [c.text for c in cached.generate(requests())]
    assert first == expected[:4] and again == expected
    assert cached.stats.extra["prefix_reused_tokens"] > 0
    assert plain.stats.extra["prefix_reused_tokens"] == 0


def test_lookup_finds_the_longest_common_prefix_and_evicts_by_bytes():
    import torch

    def layers(n):
        return [(torch.full((2, n, 4), float(n)), torch.zeros((2, n, 4)))]

    cache = PrefixCache(max_bytes=2 * 2 * 100 * 4 * 4)  # room for two 100-token entries
    base = list(range(100))
    cache.store(base, layers(100))
    length, found = cache.lookup(base[:60] + [999] * 50, limit=200)
    assert length == 60 and found[0][0].shape == (2, 60, 4)
    assert cache.lookup(base, limit=80)[0] == 80  # never more than asked
    assert cache.lookup([7] * 100, limit=100) == (0, None)
    cache.store([*base, 100, 101], layers(102))  # supersedes its own prefix
    assert len(cache._entries) == 1
    cache.store(list(range(500, 600)), layers(100))
    cache.store(list(range(700, 800)), layers(100))  # over budget: the least recently used goes
    assert cache.nbytes <= cache.max_bytes
    assert cache.lookup(base, limit=100)[0] == 0


def test_lookup_among_many_entries_that_share_a_start():
    """Conversations of many APIs share a system prompt: the entry sharing the most is found."""
    import torch

    def layers(n):
        return [(torch.zeros((1, n, 2)), torch.zeros((1, n, 2)))]

    cache = PrefixCache(max_bytes=1 << 30)
    shared = list(range(64))
    for api in range(200):
        tail = [1000 + api] * (10 + api)
        cache.store(shared + tail, layers(64 + len(tail)))
    query = shared + [1000 + 137] * 500
    assert cache.lookup(query, limit=len(query))[0] == 64 + 10 + 137
    assert cache.lookup(shared + [5] * 40, limit=104)[0] == 64
    assert cache.lookup(shared[:40] + [5] * 40, limit=80)[0] == 40  # a partial block still counts

    for api in range(200):  # every entry superseded by a longer one: only the longer ones remain
        tail = [1000 + api] * (10 + api)
        cache.store(shared + tail + [7] * 33, layers(64 + len(tail) + 33))
    assert len(cache._entries) == 200
    while cache._entries:
        cache._evict(next(iter(cache._entries)))
    assert cache.nbytes == 0 and not cache._by_block and not cache._by_last_block
