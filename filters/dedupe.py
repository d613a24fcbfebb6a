"""Exact and semantic deduplication of queries (trials, paraphrases, training rows).

Why: exploration repeats itself (the same query imagined twice, with different case or
punctuation) and paraphrasing produces near-copies; duplicates waste training budget and
over-weight some APIs. The rules, all deterministic:

- **Exact**: two rows are duplicates when their normalised queries are equal (`normalise_query`:
  Unicode NFKC, lower case, apostrophes deleted, every other punctuation character replaced by a
  space, whitespace collapsed and trimmed). Symbols such as `$`, `€` or `+` are kept: they carry
  meaning in tool queries. Done with Polars expressions, so a million rows take about a second.
- **Semantic**: rows whose query embeddings (all-MiniLM-L6-v2 by default) have cosine similarity
  at or above `threshold` are duplicates. The neighbour search works on square tiles of
  `block` x `block` similarities, keeping only pairs above the threshold, so memory grows with
  `block**2` and with the number of duplicate pairs, never with `n**2`.
- **Scope**: within each API (`by="api"`) by default; `by=None` compares all rows.
- **Which row is kept**: rows are ranked by `prefer` (default `DEFAULT_PREFER`: a seed query before
  a paraphrase, then a successful trial before a failed one) and then by input position. Exact
  groups keep their best-ranked row. Semantic clusters are formed greedily in rank order
  (`linkage="leader"`): a row is dropped when an already kept row is a neighbour, and is then
  attributed to its most similar kept neighbour; otherwise it is kept. Unlike connected
  components (`linkage="components"`, union-find), this never drops a row through a chain of
  neighbours, so each dropped row is within `threshold` of the row it duplicates. Either way no two
  kept rows of one scope are neighbours.
- **Values guard** (`same_values=True`): two queries are semantic duplicates only if they
  mention the same values: the same numbers (digit runs as integers, and the English words zero
  to twenty) and the same names (capitalised words after the first word, lower-cased, "I"
  excepted), each compared as a multiset. Embeddings barely see slot values ("order 48213" vs
  "order 48214": cosine 0.98; "weather in Boston on Monday" vs "... on Tuesday": 0.95), while in
  tool queries those values are the call's arguments, so other values mean another query.
- Every dropped row says why: "exact duplicate of <id>" or "semantic duplicate of <id> (cosine
  0.93)", with <id> the kept row's `id_column` value (`trial_id` by default) or its input position.

`DEFAULT_THRESHOLD` (0.8) was chosen on tests/data/dedupe_pairs.jsonl (labelled tool-query pairs,
hard negatives included; docs/dedupe.md has the measurement): it merges queries that ask the
same thing. Paraphrases made on purpose are such duplicates of their seed, so deduping them
calls for `PARAPHRASE_THRESHOLD` (0.95), which drops only near-copies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from imaginarium.errors import InputError
from imaginarium.options import Options

DEFAULT_THRESHOLD = 0.8
# For deduping paraphrases (the augment stage): a paraphrase is meant to mean the same as its seed,
# so only near-copies should go. On the labelled pairs, 2 of 24 true paraphrases score >= 0.95.
PARAPHRASE_THRESHOLD = 0.95
DEFAULT_BLOCK = 2048
# Seeds before paraphrases, then successful trials before failed ones; each key is used only
# when its column exists. False sorts before True and nulls sort last.
DEFAULT_PREFER: tuple[str | pl.Expr, ...] = (
    pl.col("paraphrase_of").is_not_null(),
    pl.col("succeeded").not_(),
)

_NUMBER_WORDS = {
    word: value for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "  # noqa: SIM905
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_ROW = "__row"
_NORM = "__norm"
_APOSTROPHES = r"['\u2018\u2019\u02bc\uff07]"


def normalised(column: str | pl.Expr) -> pl.Expr:
    """The Polars expression behind `normalise_query`, for use on whole columns."""
    expr = pl.col(column) if isinstance(column, str) else column
    return (
        expr.cast(pl.String)
        .fill_null("")
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(_APOSTROPHES, "")
        .str.replace_all(r"\p{P}+", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def normalise_query(text: str) -> str:
    """The key of exact deduplication: "What's the  Weather, in PARIS?" -> "whats the weather in paris".

    Computed by the same Polars expression as the column version, so both always agree.
    """
    return pl.select(normalised(pl.lit(text, dtype=pl.String))).item()


def _rank_keys(df: pl.DataFrame, prefer: Sequence[str | pl.Expr] | None) -> list[pl.Expr]:
    """Sort keys for `prefer`, skipping default keys whose columns are absent.

    A string "name" sorts ascending by that column, "-name" descending; expressions sort
    ascending. Explicit keys must name existing columns.
    """
    explicit = prefer is not None
    keys: list[pl.Expr] = []
    for key in DEFAULT_PREFER if prefer is None else prefer:
        if isinstance(key, str):
            name = key[1:] if key.startswith("-") else key
            expr = pl.col(name).rank("dense", descending=key.startswith("-"))
            needed = [name]
        else:
            expr, needed = key, key.meta.root_names()
        missing = [name for name in needed if name not in df.columns]
        if missing and explicit:
            raise InputError(f"prefer names a missing column {missing[0]!r}; columns: {df.columns}")
        if not missing:
            keys.append(expr)
    return keys


def _ranked(df: pl.DataFrame, prefer: Sequence[str | pl.Expr] | None) -> pl.DataFrame:
    """`df` with its input position in `__row`, sorted best first (ties keep input order)."""
    df = df.with_row_index(_ROW)
    keys = _rank_keys(df, prefer)
    if not keys:
        return df
    return df.sort([*keys, pl.col(_ROW)], nulls_last=True, maintain_order=True)


def exact_duplicates(
    df: pl.DataFrame,
    *,
    column: str = "query",
    by: str | Sequence[str] | None = "api",
    prefer: Sequence[str | pl.Expr] | None = None,
) -> pl.DataFrame:
    """`df` in its own order with a column `duplicate_of`: the position of the row kept for this
    row's normalised query (within its `by` group), or null when this row is the one kept."""
    _require_columns(df, [column, *_as_list(by)])
    ranked = _ranked(df, prefer).with_columns(normalised(column).alias(_NORM))
    keeper = pl.col(_ROW).first().over([*_as_list(by), _NORM])
    return (
        ranked.with_columns(
            pl.when(keeper != pl.col(_ROW)).then(keeper).otherwise(None).alias("duplicate_of")
        )
        .sort(_ROW)
        .drop(_ROW, _NORM)
    )


def values_key(text: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The values a query mentions: (sorted numbers, sorted names), for the values guard.

    "Book 2 rooms in New York on 2024-01-05, I said ten" -> ((1, 2, 5, 10, 2024), ("new", "york")).
    """
    numbers = [int(run) for run in re.findall(r"\d+", text)]
    words = re.findall(r"[^\W\d_]+", text)
    numbers += [_NUMBER_WORDS[word.lower()] for word in words if word.lower() in _NUMBER_WORDS]
    names = [word.lower() for word in words[1:] if word[0].isupper() and word != "I"]
    return tuple(sorted(numbers)), tuple(sorted(names))


@dataclass(frozen=True)
class Clusters:
    """Semantic clusters: for row i, `kept[i]` is the position of the row kept for its cluster
    (i itself when row i is kept) and `cosine[i]` its similarity to that row (1.0 when kept)."""

    kept: np.ndarray
    cosine: np.ndarray

    @property
    def is_kept(self) -> np.ndarray:
        return self.kept == np.arange(len(self.kept))


def neighbour_pairs(vectors: np.ndarray, threshold: float, block: int = DEFAULT_BLOCK):
    """All pairs (i, j) with j < i and cosine(vectors[i], vectors[j]) >= threshold.

    Rows must be unit length. Works on `block` x `block` tiles of the lower triangle, so the
    memory used at once is a few tiles (about 3 * 4 * block**2 bytes) plus the pairs found.
    Returns (i, j, cosine) arrays.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    found_i, found_j, found_s = [], [], []
    for row_start in range(0, len(vectors), block):
        rows = vectors[row_start : row_start + block]
        for col_start in range(0, row_start + len(rows), block):
            sims = rows @ vectors[col_start : col_start + block].T
            hit_r, hit_c = np.nonzero(sims >= threshold)
            i, j = hit_r + row_start, hit_c + col_start
            lower = j < i
            found_i.append(i[lower])
            found_j.append(j[lower])
            found_s.append(sims[hit_r[lower], hit_c[lower]])
    if not found_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)


def _leaders(n: int, i: np.ndarray, j: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy clusters in position order: a row joins its most similar earlier kept neighbour."""
    kept = np.arange(n)
    cosine = np.ones(n, dtype=np.float32)
    order = np.lexsort((j, -s, i))  # by row, then most similar first, then earliest neighbour
    i, j, s = i[order], j[order], s[order]
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(i)]
    for start, end in zip(starts, ends):  # only rows that have an earlier neighbour
        candidates = j[start:end]
        leading = kept[candidates] == candidates
        if leading.any():
            first = int(np.argmax(leading))
            kept[i[start]] = candidates[first]
            cosine[i[start]] = s[start + first]
    return kept, cosine


def _components(vectors: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (union-find); each keeps its earliest row."""
    parent = np.arange(len(vectors))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root stays the earliest row
    kept = np.array([root(x) for x in range(len(vectors))], dtype=np.int64)
    cosine = np.einsum("ij,ij->i", vectors, vectors[kept]).astype(np.float32)
    cosine[kept == np.arange(len(vectors))] = 1.0
    return kept, cosine


def semantic_clusters(
    texts: Sequence[str] | None = None,
    *,
    vectors: np.ndarray | None = None,
    groups: Sequence[Hashable] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    model: str | None = None,
    block: int = DEFAULT_BLOCK,
    linkage: str = "leader",
    same_values: bool = True,
    show_progress: bool = False,
    map_groups: Callable[[Callable, list[tuple]], list] | None = None,
) -> Clusters:
    """Cluster near-duplicate texts; earlier positions are preferred as the kept row.

    Give `texts` (embedded with `imaginarium.embeddings.embed` and `model`) or unit-length
    `vectors` (or both: the vectors are used, the texts feed the values guard). Rows are
    compared only within the same `groups` label (None: all together). `linkage="leader"`
    (default) or `"components"`; `same_values`: the values guard (needs texts). See the
    module docstring. `map_groups(function, jobs)` runs the per-scope searches (default: here,
    one after another; `RayEngine.map` runs them as Ray tasks, with the same result).
    """
    if linkage not in ("leader", "components"):
        raise ValueError(f"linkage must be 'leader' or 'components', not {linkage!r}")
    if vectors is None:
        if texts is None:
            raise ValueError("give texts or vectors")
        from imaginarium.embeddings import embed

        vectors = embed(list(texts), model=model, show_progress=show_progress)
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    value_codes = None
    if same_values and texts is not None:
        codes: dict[tuple, int] = {}
        value_codes = np.array([codes.setdefault(values_key(t), len(codes)) for t in texts], dtype=np.int64)
    kept = np.arange(n)
    cosine = np.ones(n, dtype=np.float32)
    scopes = _group_members(n, groups)
    jobs = [(vectors if len(members) == n else vectors[members],  # one scope: no copy
             None if value_codes is None else value_codes[members], threshold, block, linkage) for members in scopes]
    results = map_groups(_scope_clusters, jobs) if map_groups is not None else [_scope_clusters(*job) for job in jobs]
    for members, (sub_kept, sub_cos) in zip(scopes, results):
        kept[members] = members[sub_kept]
        cosine[members] = sub_cos
    return Clusters(kept=kept, cosine=cosine)


def _scope_clusters(vectors: np.ndarray, value_codes: np.ndarray | None, threshold: float, block: int,
                    linkage: str) -> tuple[np.ndarray, np.ndarray]:
    """The clusters of one scope (an API's rows): (kept position, cosine) per row, positions local."""
    i, j, s = neighbour_pairs(vectors, threshold, block)
    if value_codes is not None:
        same = value_codes[i] == value_codes[j]
        i, j, s = i[same], j[same], s[same]
    if linkage == "leader":
        return _leaders(len(vectors), i, j, s)
    return _components(vectors, i, j)


def _group_members(n: int, groups: Sequence[Hashable] | None) -> list[np.ndarray]:
    """Positions of each group, ascending within a group (so position order is kept)."""
    if groups is None:
        return [np.arange(n)] if n else []
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} labels for {n} rows")
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(label, len(index)) for label in groups], dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def dedupe(
    rows: pl.DataFrame | Sequence[Mapping[str, Any]],
    *,
    column: str = "query",
    by: str | Sequence[str] | None = "api",
    semantic: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    model: str | None = None,
    prefer: Sequence[str | pl.Expr] | None = None,
    id_column: str | None = "trial_id",
    linkage: str = "leader",
    same_values: bool = True,
    block: int = DEFAULT_BLOCK,
    vectors: np.ndarray | None = None,
    show_progress: bool = False,
    embed_texts: Callable[[list[str]], np.ndarray] | None = None,
    map_groups: Callable[[Callable, list[tuple]], list] | None = None,
):
    """Exact then (optionally) semantic deduplication: returns (kept, dropped).

    `rows` is a Polars DataFrame or a list of dicts; both results have the same kind and keep
    the input order. Dropped rows gain `duplicate_of` (the kept row's `id_column` value, or its
    input position when that column is absent) and `drop_reason`. `prefer` ranks rows for the
    kept-row rule (see the module docstring); `vectors` (unit rows aligned with `rows`) skips the
    embedding step when the caller already has them. `embed_texts` embeds the rows left after
    exact dedupe (default: `imaginarium.embeddings.embed` here; on Ray, `RayEngine.embed` on Ray
    Data) and `map_groups` runs the per-API neighbour searches (see `semantic_clusters`).
    """
    frame = rows if isinstance(rows, pl.DataFrame) else None
    records = None if isinstance(rows, pl.DataFrame) else rows
    if records is not None and not records:
        return [], []
    df = frame if frame is not None else _key_frame(records, column, by, prefer, id_column)
    _require_columns(df, [column, *_as_list(by)])
    if vectors is not None and len(vectors) != df.height:
        raise ValueError(f"vectors has {len(vectors)} rows for {df.height} rows")
    n = df.height
    ids = df[id_column].cast(pl.String).to_list() if id_column and id_column in df.columns else [str(x) for x in range(n)]

    marked = _ranked(exact_duplicates(df, column=column, by=by, prefer=prefer), prefer)
    rank_order = marked[_ROW].to_numpy()  # positions, best first
    reasons: dict[int, tuple[int, str]] = {}  # dropped position -> (kept position, reason)
    for position, keeper in zip(rank_order.tolist(), marked["duplicate_of"].to_list()):
        if keeper is not None:
            reasons[position] = (keeper, f"exact duplicate of {ids[keeper]}")

    if semantic:
        survivors = np.array([p for p in rank_order.tolist() if p not in reasons], dtype=np.int64)
        texts = df[column].cast(pl.String).fill_null("").to_list()
        groups = None
        if by is not None:
            keys = df.select(_as_list(by)).rows()
            groups = [keys[p] for p in survivors]
        survivor_texts = [texts[p] for p in survivors]
        survivor_vectors = None if vectors is None else np.asarray(vectors)[survivors]
        if survivor_vectors is None and embed_texts is not None:
            survivor_vectors = embed_texts(survivor_texts)
        clusters = semantic_clusters(
            survivor_texts, vectors=survivor_vectors,
            groups=groups, threshold=threshold, model=model, block=block, linkage=linkage,
            same_values=same_values, show_progress=show_progress, map_groups=map_groups,
        )
        for local in np.flatnonzero(~clusters.is_kept):
            position, keeper = int(survivors[local]), int(survivors[clusters.kept[local]])
            reasons[position] = (
                keeper, f"semantic duplicate of {ids[keeper]} (cosine {clusters.cosine[local]:.2f})"
            )

    dropped_positions = sorted(reasons)
    kept_positions = [p for p in range(n) if p not in reasons]
    duplicate_of = [ids[reasons[p][0]] for p in dropped_positions]
    why = [reasons[p][1] for p in dropped_positions]
    if frame is not None:
        dropped_frame = frame[dropped_positions].with_columns(
            pl.Series("duplicate_of", duplicate_of, dtype=pl.String),
            pl.Series("drop_reason", why, dtype=pl.String),
        )
        return frame[kept_positions], dropped_frame
    assert records is not None
    kept = [records[p] for p in kept_positions]
    dropped = [
        {**records[p], "duplicate_of": of, "drop_reason": reason}
        for p, of, reason in zip(dropped_positions, duplicate_of, why)
    ]
    return kept, dropped


def _key_frame(rows, column, by, prefer, id_column) -> pl.DataFrame:
    """Only the columns dedupe reads, so nested row fields never go through Polars."""
    names = {column, *_as_list(by)}
    if id_column:
        names.add(id_column)
    for key in DEFAULT_PREFER if prefer is None else prefer:
        names.update([key.lstrip("-")] if isinstance(key, str) else key.meta.root_names())
    present = [name for name in names if any(name in row for row in rows)]
    for position, row in enumerate(rows):
        if column not in row:
            raise InputError(f"row {position} has no field {column!r}")
    return pl.DataFrame({name: [row.get(name) for row in rows] for name in sorted(present)}, strict=False)


def _require_columns(df: pl.DataFrame, names: Sequence[str]) -> None:
    for name in names:
        if name not in df.columns:
            raise InputError(f"no column {name!r}; columns: {df.columns}")


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


class DedupeOptions(Options):
    """How a stage deduplicates its rows (filter and augment), declared once for both."""

    dedupe: bool = Field(True, description="Drop exact and semantic duplicates (within each API).")
    semantic: bool = Field(True, description="Semantic dedupe with sentence embeddings (exact dedupe always runs "
                                             "with --dedupe).")
    threshold: float | None = Field(None, gt=0, le=1, description=(
        "Cosine similarity at or above which queries are duplicates (default: 0.8 for filter, 0.95 for augment, "
        "whose paraphrases are close to their seed by design)."))
    embedding_model: str | None = Field(None, min_length=1, description=(
        "sentence-transformers model name or path (default: the bundled all-MiniLM-L6-v2)."))

    def step(self, default_threshold: float, engine: Any = None):
        """The callable the stages take: rows -> (kept rows, [(dropped row, reason)]), or None.

        `engine` (an `imaginarium.engine.RayEngine`): the embeddings on Ray Data and the per-API
        neighbour searches as Ray tasks; the result is the same."""
        if not self.dedupe:
            return None
        cut = default_threshold if self.threshold is None else self.threshold
        on_ray: dict[str, Any] = {}
        if engine is not None:
            on_ray = {"embed_texts": lambda texts: engine.embed(texts, model=self.embedding_model),
                      "map_groups": engine.map_batched}

        def run(rows):
            kept, dropped = dedupe(rows, semantic=self.semantic, model=self.embedding_model, threshold=cut, **on_ray)
            return kept, [(row, row["drop_reason"]) for row in dropped]

        return run
