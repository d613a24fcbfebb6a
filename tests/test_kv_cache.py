"""The append-in-place KV cache: the same keys, values and model outputs as transformers' own."""

import torch
from transformers import AutoModelForCausalLM
from transformers.cache_utils import DynamicCache, DynamicLayer

from imaginarium.models.kv_cache import AppendLayer, append_cache


def test_append_layer_holds_what_dynamic_layer_holds_through_growth_and_selection():
    generator = torch.Generator().manual_seed(0)

    def states(length):
        return torch.randn((3, 2, length, 4), generator=generator)

    ours, theirs = AppendLayer(room=2), DynamicLayer()
    for length in (5, 1, 1, 1, 3, 1):  # the room of 2 runs out twice: the buffer grows
        keys, values = states(length), states(length)
        got, expected = ours.update(keys, values), theirs.update(keys, values)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert ours.get_seq_length() == theirs.get_seq_length() == 12
    rows = torch.tensor([2, 0])
    ours.batch_select_indices(rows)
    theirs.batch_select_indices(rows)
    keys, values = states(1)[:2], states(1)[:2]
    got, expected = ours.update(keys, values), theirs.update(keys, values)
    assert got[0].shape == (2, 2, 13, 4)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_the_model_decodes_the_same_with_either_cache(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompt = torch.randint(0, model.config.vocab_size - 1, (2, 40), generator=torch.Generator().manual_seed(1))
    runs = []
    for cache in (DynamicCache(config=model.config), append_cache(model.config.num_hidden_layers, room=3)):
        tokens, logits_seen = prompt, []
        with torch.inference_mode():
            for _ in range(8):  # past the room of 3: the buffer is reallocated mid-decode
                out = model(input_ids=tokens, cache=cache, use_cache=True, logits_to_keep=1)
                logits_seen.append(out.logits[:, -1])
                tokens = out.logits[:, -1].argmax(-1, keepdim=True)
        runs.append(torch.stack(logits_seen))
    assert torch.allclose(runs[0], runs[1], atol=1e-5)
    assert torch.equal(runs[0].argmax(-1), runs[1].argmax(-1))
