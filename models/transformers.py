"""The `transformers` backend: HF transformers + Outlines, on CPU or GPU.

Why our own decoding loop instead of `model.generate` with Outlines' logits processors:
- per-row seeds: each sample draws from its own torch.Generator, so the same seed gives the
  same output whatever else is in the batch (HF generate shares one RNG across the batch);
- batched masking: rows' grammar matchers write into one bitmask that is applied with one
  tensor op (see structured.py), which keeps constrained decoding close to unconstrained speed;
- rows with different constraints share a batch, so a few requests per schema still batch well.

Requests are expanded into `n` rows, sorted by prompt length, and decoded in batches of at most
`batch_size` rows and `batch_tokens` padded prompt tokens, with left padding and a KV cache.
Every constrained result is validated by the shared `validate_completion` (jsonschema, full
regex match, exact choice), the check all backends agree on: `value` is set
only when it is valid; an invalid one is retried with a fresh seed up to `max_retries` times,
then reported as finish_reason=invalid. A result cut by max_tokens is `length`, never valid.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, cast

from imaginarium.errors import InputError
from imaginarium.jsonutil import content_hash
from imaginarium.models.backend import Backend, Completion, Constraint, GenerationRequest
from imaginarium.models.constraint_check import validate_completion
from imaginarium.models.grammars import (
    STRUCTURED_BACKENDS,
    CompiledConstraint,
    ConstraintCompiler,
    RowMatcher,
    allowed_tokens,
)
from imaginarium.models.options import DEFAULT_STRUCTURED_BACKEND


def default_prefix_cache_bytes() -> int:
    """The prefix cache's default budget: a quarter of the machine's memory, at most 8 GiB.

    A real model's keys and values are large (SmolLM2-135M: 46 KB per token in fp32), and an
    exploration keeps one conversation per API in flight: 50 APIs of about 1,000 tokens need
    about 2.3 GB. With less, entries are evicted before their next step reuses them (a 1 GiB
    budget halved the share of prompt tokens served from the cache on the 50 STE APIs).
    """
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return min(8 << 30, total // 4)


def constraint_key(constraint: Constraint | None) -> str:
    """The cache key of a constraint: a hash of its canonical JSON ('' for none)."""
    if constraint is None:
        return ""
    return content_hash({"kind": constraint.kind, "value": constraint.value})


def row_seed(seed: int | None, sample_index: int, attempt: int) -> int:
    """The RNG seed of one sample: derived from the request's seed, or fresh when it has none."""
    if seed is None:
        return secrets.randbits(63)
    digest = hashlib.sha256(f"{seed}/{sample_index}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class _Row:
    """One sample being generated: request `request_index`, sample `sample_index`."""

    request_index: int
    sample_index: int
    request: GenerationRequest
    prompt_ids: list[int]
    key: str
    attempt: int = 0
    tokens: list[int] = field(default_factory=list)
    cached: int = 0  # leading prompt tokens whose keys/values come from the prefix cache
    cached_layers: list | None = None
    reused: int = 0  # of those, the ones found in the cache (not computed for this row beforehand)

    @property
    def to_compute(self) -> int:
        return len(self.prompt_ids) - self.cached


class TransformersBackend(Backend):
    """Generate with a local HF causal LM; constraints enforced by an Outlines structured backend."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        *,
        device: str | None = None,
        structured_backend: str = DEFAULT_STRUCTURED_BACKEND,
        max_retries: int = 2,
        batch_size: int = 64,
        batch_tokens: int = 32768,
        prefix_cache_bytes: int | None = None,
        dtype: str = "auto",
        num_threads: int | None = None,
    ):
        from imaginarium.models.factory import resolve_model

        if structured_backend not in STRUCTURED_BACKENDS:
            raise InputError(f"unknown {structured_backend!r}; choose one of {', '.join(STRUCTURED_BACKENDS)}", where="structured_backend")
        super().__init__(str(model), revision)  # `tiny` stays `tiny` in manifests, not a temp path
        path = resolve_model(self.model)
        if device in (None, "cpu"):
            os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # else the first constrained call compiles ~10 s
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # torch's thread count is process-wide: it is set while this backend generates and then
        # put back, so one backend's choice (1 is fastest for tiny models on a busy CPU) does not
        # slow another's (a real model wants every core).
        self.num_threads = num_threads
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            # Grouped-query attention inside SDPA instead of copying each key/value head to every
            # query head first: on CPU that copy costs as much as a decode step's attention. (On
            # CUDA, transformers keeps the copy: masked GQA would fall back to a slow kernel.)
            os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
        self.structured_backend = structured_backend
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        from imaginarium.models.prefix_cache import PrefixCache

        budget = default_prefix_cache_bytes() if prefix_cache_bytes is None else prefix_cache_bytes
        self._prefix = PrefixCache(budget) if budget > 0 else None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        except OSError as exc:  # no such directory, not a model, not in the offline Hub cache
            raise InputError(f"cannot load the model {path!r}: {str(exc).splitlines()[0]}", where="--model") from None
        self.tokenizer.padding_side = "left"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar per backend is noise in a stage's output
        self.hf_model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=dtype)
        self.hf_model.to(self.device).eval()  # type: ignore[arg-type]  # a device name is fine
        # transformers 5.x renamed the forward argument `past_key_values` to `cache` (the old name
        # warns and will go); older 5.x releases only know the old name.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.hf_model.forward).parameters else "past_key_values"
        self.eos_ids = self._eos_ids()
        text_config = self.hf_model.config.get_text_config(decoder=True)
        layer_types = getattr(text_config, "layer_types", None)
        # The number of layers when all use full attention (the append-in-place KV cache fits them).
        self._append_layers = (None if layer_types and set(layer_types) != {"full_attention"}
                               else text_config.num_hidden_layers)
        head = self.hf_model.get_output_embeddings()
        self.logits_vocab = head.weight.shape[0] if head is not None else self.hf_model.config.vocab_size
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._compiler: ConstraintCompiler | None = None
        self._compiled: dict[str, CompiledConstraint | Exception] = {}
        # Where the time goes, for run reports and benchmarks: row-by-row prompt prefill and the
        # model's forward passes while decoding batches (the rest: masking, sampling, upkeep).
        # CPU figures: on a GPU a forward returns before its kernels finish.
        self.stats.extra.update({"compile_seconds": 0.0, "constraints_compiled": 0, "constraint_cache_hits": 0,
                                 "prefix_reused_tokens": 0, "prompt_tokens_computed": 0, "decode_steps": 0,
                                 "prefill_seconds": 0.0, "decode_forward_seconds": 0.0})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "structured_backend": self.structured_backend}

    def _eos_ids(self) -> set[int]:
        ids = set()
        configured = getattr(self.hf_model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        if not ids:
            raise ValueError(f"model {self.model} has no end-of-sequence token")
        return ids

    # -- constraints -------------------------------------------------------------------------

    def compiled(self, constraint: Constraint) -> CompiledConstraint:
        """The compiled form of `constraint`, compiled once per process (Outlines has no cache).

        Raises what compiling raised, then and on every later call for the same constraint.
        """
        key = constraint_key(constraint)
        if key in self._compiled:
            self.stats.extra["constraint_cache_hits"] += 1
        else:
            if self._compiler is None:
                import outlines

                self._compiler = ConstraintCompiler(
                    outlines.from_transformers(self.hf_model, self.tokenizer), self.structured_backend  # type: ignore[arg-type]
                )
            try:
                compiled = self._compiler.compile(constraint)
                self._compiled[key] = compiled
                self.stats.extra["compile_seconds"] += compiled.compile_seconds
                self.stats.extra["constraints_compiled"] += 1
            except Exception as exc:  # a schema the engine cannot handle fails its requests only
                self._compiled[key] = exc
        result = self._compiled[key]
        if isinstance(result, Exception):
            raise result
        return result

    # -- generation ------------------------------------------------------------------------

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        if self.num_threads is None:
            return self._generate_rows(requests)
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._generate_rows(requests)
        finally:
            torch.set_num_threads(before)

    def _generate_rows(self, requests: list[GenerationRequest]) -> list[Completion]:
        rows: list[_Row] = []
        for index, request in enumerate(requests):
            prompt_ids = self._prompt_ids(request)
            key = constraint_key(request.constraint)
            rows.extend(_Row(index, k, request, prompt_ids, key) for k in range(request.n))
        results: dict[tuple[int, int], Completion] = {}
        failures = self._compile_all(requests)
        pending = []
        for row in rows:
            if row.key in failures:
                results[row.request_index, row.sample_index] = Completion(
                    "", "error", prompt_tokens=len(row.prompt_ids), request_index=row.request_index,
                    sample_index=row.sample_index, error=f"constraint could not be compiled: {failures[row.key]}",
                )
            else:
                pending.append(row)
        while pending:
            retry = []
            for row in pending:
                self.stats.extra["prompt_tokens_computed"] += len(row.prompt_ids)
                if self._prefix is not None:
                    row.cached, row.cached_layers = self._prefix.lookup(row.prompt_ids, len(row.prompt_ids) - 1)
                    row.reused = row.cached
                    self.stats.extra["prefix_reused_tokens"] += row.cached
                    self.stats.extra["prompt_tokens_computed"] -= row.cached
                    if self.device == "cpu" and row.to_compute > 1:
                        started = time.perf_counter()
                        self._prefill_alone(row)
                        self.stats.extra["prefill_seconds"] += time.perf_counter() - started
            for batch in self._batches(pending):
                for row, completion in zip(batch, self._decode_batch(batch)):
                    if completion.finish_reason == "invalid" and row.attempt < self.max_retries:
                        row.attempt += 1
                        retry.append(row)
                    else:
                        results[row.request_index, row.sample_index] = completion
            pending = retry
        self.stats.extra["retries"] = self.stats.extra.get("retries", 0) + sum(r.attempt for r in rows)
        return [results[row.request_index, row.sample_index] for row in rows]

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Rows grouped into batches of similar prompt length.

        Every row of a batch computes as many prompt tokens as the row with the most to compute
        (the rest is padding), and prefill attention grows with that width times the context,
        so rows are sorted by the number of prompt tokens they must compute (what the prefix
        cache does not hold; constraints may mix in a batch) and a batch closes at `batch_size`
        rows or `batch_tokens` padded tokens to compute: short remainders share large batches,
        long ones run in small batches instead of making a whole batch pay for their length.
        """
        batches: list[list[_Row]] = []
        current: list[_Row] = []
        for row in sorted(rows, key=lambda r: (r.to_compute, len(r.prompt_ids), r.key)):
            if current and (len(current) >= self.batch_size
                            or (len(current) + 1) * row.to_compute > self.batch_tokens):
                batches.append(current)
                current = []
            current.append(row)
        if current:
            batches.append(current)
        return batches

    def _compile_all(self, requests: list[GenerationRequest]) -> dict[str, str]:
        """Compile each distinct constraint of a call (or find it compiled); key -> why it failed."""
        failures = {}
        distinct = {constraint_key(r.constraint): r.constraint for r in requests if r.constraint is not None}
        for key, constraint in distinct.items():
            try:
                self.compiled(constraint)
            except Exception as exc:
                failures[key] = str(exc)
        return failures

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.messages is not None:
            if not self.tokenizer.chat_template:
                raise ValueError(f"model {self.model} has no chat template; send a raw prompt instead")
            text = self.tokenizer.apply_chat_template(
                request.messages, tools=request.tools, add_generation_prompt=True, tokenize=False  # type: ignore[arg-type]
            )
            return self.tokenizer(text, add_special_tokens=False).input_ids
        # An empty raw prompt still needs one position to predict from: the start token.
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.pad_id
        return self.tokenizer(request.prompt).input_ids or [start]

    def _decode_batch(self, rows: list[_Row]) -> list[Completion]:
        """Decode one batch to the end; returns a completion per row (not yet retried)."""
        import torch

        size = len(rows)
        input_ids, attention, positions, past = self._prefill_inputs(rows, room=max(r.request.max_tokens for r in rows))
        matchers: list[RowMatcher | None] = [
            cast(CompiledConstraint, self._compiled[r.key]).new_matcher() if r.request.constraint else None
            for r in rows  # compiled by _compile_all; rows whose constraint failed never get here
        ]
        generators = [torch.Generator().manual_seed(row_seed(r.request.seed, r.sample_index, r.attempt)) for r in rows]
        # Logits stay on the model's device; only the bitmask (1 bit per token) and draws travel.
        temperatures = torch.tensor([r.request.temperature for r in rows], dtype=torch.float32, device=self.device)
        top_ps = torch.tensor([r.request.top_p for r in rows], dtype=torch.float32, device=self.device)
        finish: list[str | None] = [None] * size
        errors: list[str | None] = [None] * size
        texts: list[str | None] = [None] * size
        for row in rows:
            row.tokens = []
        bitmask = None
        if any(m is not None for m in matchers) and self._compiler is not None:
            words = (self._compiler.mask_vocab_size(self.logits_vocab) + 31) // 32
            bitmask = torch.full((size, words), -1, dtype=torch.int32)
        live = list(range(size))  # the rows still in the model's batch, in batch order
        step_input = input_ids
        with torch.inference_mode():
            while True:
                started = time.perf_counter()
                out = self.hf_model(
                    input_ids=step_input.to(self.device),
                    attention_mask=attention.to(self.device),
                    position_ids=positions.to(self.device),
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_arg: past},
                )
                past = self._returned_cache(out)
                logits = out.logits[:, -1, :].float()
                self.stats.extra["decode_steps"] += 1
                self.stats.extra["decode_forward_seconds"] += time.perf_counter() - started
                if bitmask is not None:
                    self._mask(logits, live, matchers, bitmask, finish, errors)
                tokens = _sample(logits, temperatures[live], top_ps[live], [generators[i] for i in live])
                for i, token in zip(live, tokens):
                    if finish[i] is not None:
                        continue
                    row = rows[i]
                    if token in self.eos_ids:  # the mask allowed it: the grammar is complete
                        finish[i] = "stop"
                        continue
                    row.tokens.append(token)
                    matcher = matchers[i]
                    if matcher is not None and not matcher.advance(token):
                        finish[i], errors[i] = "invalid", f"the grammar rejected token {token} from its own mask"
                    elif row.request.stop and (cut := self._stop_cut(row)) is not None:
                        finish[i], texts[i] = "stop", cut
                    elif len(row.tokens) >= row.request.max_tokens:
                        finish[i] = "length"
                if self._prefix is not None:
                    for j, i in enumerate(live):
                        if finish[i] is not None and finish[i] != "error" and rows[i].request.remember:
                            self._remember(rows[i], past, attention[j], j)
                keep = [j for j, i in enumerate(live) if finish[i] is None]
                if not keep:
                    break
                if len(keep) < len(live):  # drop finished rows: later steps compute only live ones
                    index = torch.tensor(keep)
                    past.batch_select_indices(index.to(self.device))
                    attention, positions = attention[index], positions[index]
                    live, tokens = [live[j] for j in keep], [tokens[j] for j in keep]
                step_input = torch.tensor(tokens).unsqueeze(1)
                attention = torch.cat([attention, torch.ones((len(live), 1), dtype=torch.long)], dim=1)
                positions = positions[:, -1:] + 1
        return [self._completion(row, finish[i] or "error", texts[i], errors[i]) for i, row in enumerate(rows)]

    def _prefill_inputs(self, rows: list[_Row], room: int):
        """Input ids, attention mask, position ids and KV cache for a batch's first step.

        Without reusable prefixes: the prompts, left-padded. With them: each row's longest
        cached prefix comes from the prefix cache and only the rest of its prompt is computed.
        Each row is laid out as [padding][cached prefix][padding][rest of the prompt]: the
        attention mask hides both paddings and position ids count only real tokens, so rows
        with long and short remainders share a batch without recomputing cached tokens.
        The cache has `room` free positions for the tokens still to be decoded.
        """
        import torch

        prompts = [r.prompt_ids for r in rows]
        reused = [(r.cached, r.cached_layers) for r in rows]
        cached = [n for n, _ in reused]
        depth = max(cached)
        if depth == 0:
            input_ids, attention, positions = self._left_padded(prompts)
            return input_ids, attention, positions, self._kv_cache(room)
        input_ids, block_attention, _ = self._left_padded([p[n:] for p, n in zip(prompts, cached)])
        attention = torch.zeros((len(rows), depth), dtype=torch.long)
        for i, n in enumerate(cached):
            attention[i, depth - n:] = 1
        reference = next(kv for _, kv in reused if kv is not None)
        layers = []
        for n_layer, (ref_keys, _) in enumerate(reference):
            heads, dim = ref_keys.shape[0], ref_keys.shape[2]
            keys = torch.zeros((len(rows), heads, depth, dim), dtype=ref_keys.dtype)
            values = torch.zeros_like(keys)
            for i, (n, kv) in enumerate(reused):
                if n and kv is not None:
                    keys[i, :, depth - n:] = kv[n_layer][0]
                    values[i, :, depth - n:] = kv[n_layer][1]
            layers.append((keys.to(self.device, self.hf_model.dtype), values.to(self.device, self.hf_model.dtype)))
        attention = torch.cat([attention, block_attention], dim=1)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, depth:]
        return input_ids, attention, positions, self._kv_cache(room, layers)

    def _kv_cache(self, room: int, prefix: list | None = None):
        """An empty KV cache, or one holding `prefix` (per layer: keys, values) for a batch.

        Models whose layers all use full attention get an append-in-place cache with `room`
        spare positions (models/kv_cache.py); others (sliding windows, linear attention)
        keep transformers' own cache, which knows their layer types.
        """
        if self._append_layers is None:
            from transformers.cache_utils import DynamicCache

            return DynamicCache(ddp_cache_data=prefix, config=self.hf_model.config)
        from imaginarium.models.kv_cache import append_cache

        return append_cache(self._append_layers, room, prefix)

    def _prefill_alone(self, row: _Row) -> None:
        """Compute a row's prompt (all but its last token) on its own, then let the batch reuse it.

        On a CPU a batch's prefill costs as if every row had the longest remainder to compute,
        and attention to long contexts is what dominates there; computing each row's remainder
        alone costs only its own tokens, and the batch then decodes together from the cached
        keys and values. (On a GPU batched prefill is cheap, so this is CPU only.)
        """
        import torch

        head = _Row(row.request_index, row.sample_index, row.request, row.prompt_ids[:-1], row.key,
                    cached=row.cached, cached_layers=row.cached_layers)
        input_ids, attention, positions, past = self._prefill_inputs([head], room=0)
        with torch.inference_mode():
            out = self.hf_model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                use_cache=True, logits_to_keep=1, **{self._cache_arg: past})
        layers = [(layer.keys[0], layer.values[0]) for layer in self._returned_cache(out).layers]
        assert self._prefix is not None  # rows are prefilled alone only with a prefix cache
        if row.request.remember or row.request.n > 1:  # other samples of the request reuse it
            self._prefix.store(head.prompt_ids, layers)
        row.cached, row.cached_layers = len(head.prompt_ids), layers

    def _returned_cache(self, out):
        """The KV cache a forward pass returned, under the output field's current name."""
        return out.cache if self._cache_arg == "cache" else out.past_key_values

    def _remember(self, row: _Row, past, attention, position: int) -> None:
        """Keep a finished row's keys and values (prompt and generated tokens) for later prompts."""
        real = attention.nonzero().flatten()  # paddings may sit before and inside the row
        layers = [(layer.keys[position][:, real], layer.values[position][:, real]) for layer in past.layers]
        assert self._prefix is not None
        self._prefix.store((row.prompt_ids + row.tokens)[: len(real)], layers)

    def _left_padded(self, prompts: list[list[int]]):
        """input ids, attention mask and position ids for prompts aligned to the right."""
        import torch

        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, width - len(ids) :] = 1
        return input_ids, attention, (attention.cumsum(-1) - 1).clamp(min=0)

    def _mask(self, logits, live, matchers, bitmask, finish, errors) -> None:
        """Set the logits of the tokens each constrained row's grammar forbids to -inf.

        The rows' matchers write into one shared bitmask, applied to all rows with one tensor
        op (Outlines' processors fill and apply row by row: 1.6x slower than unconstrained).
        """
        positions = [j for j, i in enumerate(live) if matchers[i] is not None]
        if not positions:  # the constrained rows of this batch have all finished
            return
        rows = [live[j] for j in positions]
        allowed = allowed_tokens(matchers, rows, bitmask, self.logits_vocab, logits.device)
        if len(rows) == len(live):
            logits.masked_fill_(~allowed, float("-inf"))
        else:
            logits[positions] = logits[positions].masked_fill(~allowed, float("-inf"))
        possible = allowed.any(dim=1)
        if not bool(possible.all()):
            for k in (~possible).nonzero().flatten().tolist():
                finish[rows[k]], errors[rows[k]] = "invalid", "the grammar allows no next token"

    def _stop_cut(self, row: _Row) -> str | None:
        """The text before the first stop string, once one has been generated."""
        text = self._text(row.tokens)
        found = [text.find(s) for s in row.request.stop or [] if s and s in text]
        return text[: min(found)] if found else None

    def _text(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return text if isinstance(text, str) else "".join(text)

    def _completion(self, row: _Row, finish: str, text: str | None, error: str | None) -> Completion:
        if text is None:
            text = self._text(row.tokens)
        value = None
        if finish == "length":
            error = "cut by max_tokens"
        elif finish == "stop" and row.request.constraint is not None:
            ok, value, problem = validate_completion(row.request.constraint, text)
            if not ok:
                finish, error = "invalid", problem
        return Completion(
            text=text,
            finish_reason=finish,  # type: ignore[arg-type]
            value=value,
            prompt_tokens=len(row.prompt_ids),
            completion_tokens=len(row.tokens),
            cached_tokens=row.reused,
            request_index=row.request_index,
            sample_index=row.sample_index,
            error=error,
        )


def _sample(logits, temperatures, top_ps, generators) -> list[int]:
    """Sample one token per row: temperature, nucleus (top_p), each row with its own RNG.

    Uniform draws come from the rows' generators; the inverse-CDF lookup is one batched op.
    Temperature 0 means greedy. A row whose logits are all -inf (a dead grammar) gets an
    arbitrary token, which the caller ignores.
    """
    import torch

    greedy = temperatures <= 0
    scaled = logits / temperatures.clamp(min=1e-5).unsqueeze(1)
    probs = torch.softmax(scaled, dim=-1).nan_to_num(0.0)
    if bool((top_ps < 1).any()):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = (sorted_probs.cumsum(-1) - sorted_probs) > top_ps.unsqueeze(1)
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter_(1, order, sorted_probs)
    cdf = probs.cumsum(-1)
    draws = torch.tensor([torch.rand(1, generator=g).item() for g in generators], device=logits.device)
    tokens = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(1)).squeeze(1).clamp(max=logits.shape[1] - 1)
    tokens = torch.where(greedy, logits.argmax(dim=-1), tokens)
    return tokens.tolist()
