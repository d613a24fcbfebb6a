"""Where a stage's model work runs: in this process (`local`) or sharded over a Ray cluster (`ray`).

Why Ray, and why this shape: one machine holds one backend replica; generating for thousands of
tools wants many (one per GPU, or several per GPU for a small model). The stages that spend
their time in a model (explore, rank, the filter's judge, augment) split their work into
*shards* (explore: one API with its episodes, its long-term memory and its cache writes; the
others: a batch of units) and hand them to `replicas` Ray actors, each holding one backend
replica and one executor. Three rules keep the output what one machine would write:

- **The driver is the single writer.** A worker yields finished units (rows and their unit
  keys) as it goes; the driver appends each chunk to the stage directory exactly as a local run
  does, so resume is unchanged: finished units are skipped, units in flight are redone once.
- **A shard's payload is built when it is dispatched**, from what the stage directory already
  holds. So a shard whose worker died (SIGKILL, OOM, a lost node) is dispatched again, to a
  fresh actor, with the units it already finished left out: nothing is lost, nothing written
  twice (the unit keys decide).
- **Seeds are per unit** (the stages derive each request's seed from its trial or question id),
  so which replica runs a unit, and with which others it is batched, does not change it.

Actors are created with `max_restarts=0`: a dead one is replaced by the driver, which knows
which shard it held (Ray's own restarts would not say). Each actor writes the responses it
records or simulates to a cache shard of its own (`executor/cache_shards.py`); the driver
merges them into the response cache, so SQLite keeps one writer per file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from imaginarium.errors import InputError
from imaginarium.options import Options

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # dispatches of one shard before the run gives up (each death gets a fresh actor)


class EngineOptions(Options):
    """Where the model work of a stage runs. None of it shapes the data, so none is fingerprinted."""

    engine: Literal["local", "ray"] = Field("local", json_schema_extra={"fingerprint": False}, description=(
        "local: this process; ray: shards (groups of APIs, or batches) over Ray actors, one backend replica each "
        "(docs/scale.md). The output is the same."))
    ray_address: str | None = Field(None, min_length=1, json_schema_extra={"fingerprint": False}, description=(
        "Ray cluster to join (host:6379, ray://host:10001 or auto). Default: start a local cluster here."))
    replicas: int | None = Field(None, ge=1, le=100_000, json_schema_extra={"fingerprint": False}, description=(
        "Ray actors, each holding one backend replica. Default: one per GPU of the cluster, or one per "
        "--cpus-per-replica CPUs without GPUs."))
    gpus_per_replica: float | None = Field(None, ge=0, le=64, json_schema_extra={"fingerprint": False}, description=(
        "GPUs each replica holds (0.5: two replicas share a GPU). Default: 1 when the cluster has GPUs, else 0."))
    cpus_per_replica: float = Field(1.0, gt=0, le=1024, json_schema_extra={"fingerprint": False},
                                    description="CPUs each replica holds (its torch threads on CPU).")
    shard_apis: int | None = Field(None, ge=1, le=1_000_000, json_schema_extra={"fingerprint": False}, description=(
        "explore on Ray: APIs per shard (default: the APIs split evenly, one shard per replica; smaller shards "
        "balance uneven APIs, larger ones batch more per replica)."))

    @property
    def on_ray(self) -> bool:
        return self.engine == "ray"


# -- the cluster -----------------------------------------------------------------------------------
def import_ray():
    """The `ray` module, or one line saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline by design: no usage report
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'imaginarium[ray]' (or pip install ray)") from None
    return ray


@contextlib.contextmanager
def ray_cluster(options: EngineOptions) -> Iterator[Any]:
    """Connect to the cluster `options` names, or start a local one; shut down what was started.

    A cluster already joined in this process (`ray.init` called by the caller, as tests and
    notebooks do) is used as it is and left running.

    Raises:
        InputError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = options.ray_address or "local"
    _check_reachable(address)
    try:  # Ray's own log at ERROR: its notices (token auth on every local start) are noise in a stage's output
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot join the Ray cluster at {address}: {exc}", where="--ray-address") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster address that nothing answers at is one line now: `ray.init` would retry for
    minutes. `local` and `auto` are left to Ray (it fails fast when no cluster is found)."""
    if address in ("local", "auto"):
        return
    target = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"not a Ray cluster address: {address!r} (host:port, ray://host:port, auto)",
                         where="--ray-address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})",
                         where="--ray-address") from None


def replica_resources(ray, options: EngineOptions) -> tuple[int, float, float]:
    """(replicas, CPUs each, GPUs each) for the cluster `ray` is joined to."""
    total = ray.cluster_resources()
    gpus = options.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if total.get("GPU", 0) >= 1 else 0.0
    if options.replicas is not None:
        replicas = options.replicas
    elif gpus > 0:
        replicas = max(1, int(total.get("GPU", 0) // gpus))
    else:
        replicas = max(1, int(total.get("CPU", 1) // options.cpus_per_replica))
    # Ray would wait forever for resources the cluster does not have: say so now
    for name, each, flag in (("CPU", options.cpus_per_replica, "--cpus-per-replica"), ("GPU", gpus, "--gpus-per-replica")):
        have = total.get(name, 0)
        if each and replicas * each > have + 1e-9:
            raise InputError(f"{replicas} replicas x {flag} {each:g} need {replicas * each:g} {name}s; the cluster has "
                             f"{have:g} (give fewer --replicas or less {flag})", where="--replicas")
    return replicas, options.cpus_per_replica, gpus


# -- workers -----------------------------------------------------------------------------------------
class ShardWorker:
    """The actor body: builds the stage's worker once (a backend replica: slow), then runs shards.

    `factory(**kwargs)` must return an object with `run(payload) -> Iterator[chunk]` (and
    optionally `close()`); chunks are plain dicts (`rows`, `units`, or `stats`).
    """

    def __init__(self, factory: Callable[..., Any], kwargs: dict[str, Any]):
        # Bad input met while building (a model that cannot load) is kept and raised by the first
        # call, so it reaches the driver as itself; raised here, Ray would report a dead actor.
        self.impl: Any = None
        self.error: InputError | None = None
        try:
            self.impl = factory(**kwargs)
        except InputError as exc:
            self.error = exc

    def pid(self) -> int:
        """The actor's process id (the driver asks it first: it also raises a build error)."""
        if self.error is not None:
            raise self.error
        return os.getpid()

    def run(self, payload: Any) -> Iterator[dict[str, Any]]:
        yield from self.impl.run(payload)

    def close(self) -> None:
        close = getattr(self.impl, "close", None)
        if close is not None:
            close()


@dataclass
class RayRun:
    """What a sharded run did: shard dispatches, deaths survived, the workers' final stats."""

    shards: int = 0
    dispatches: int = 0
    worker_deaths: int = 0
    replicas: int = 0
    stats: list[dict[str, Any]] = field(default_factory=list)


class RayEngine:
    """Runs shards on Ray actors for one stage; the caller (the driver) writes what they yield.

    Args:
        options: the engine options (address, replicas, resources).
        after_chunk: called with (shard key, chunk) after the driver handled each chunk;
            tests use it to kill a worker mid-run, progress displays to advance.
    """

    def __init__(self, options: EngineOptions | None = None, *,
                 after_chunk: Callable[[str, dict[str, Any]], None] | None = None):
        self.options = options or EngineOptions(engine="ray")
        self.after_chunk = after_chunk
        self.pids: dict[Any, int] = {}  # live actor -> its process id
        self.running: dict[str, int] = {}  # shard key -> the process id of the actor running it
        self._cluster: contextlib.ExitStack | None = None

    def __enter__(self) -> RayEngine:
        """Join (or start) the cluster for several calls; left on exit if this started it."""
        self._cluster = contextlib.ExitStack()
        self._cluster.enter_context(ray_cluster(self.options))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def replica_count(self) -> int:
        """How many replicas a run will start on this cluster."""
        with ray_cluster(self.options) as ray:
            return replica_resources(ray, self.options)[0]

    def run_shards(self, factory: Callable[..., Any], kwargs: dict[str, Any], shards: Sequence[str],
                   payload_for: Callable[[str], Any], on_chunk: Callable[[str, dict[str, Any]], None],
                   *, progress_label: str | None = None, total_units: int = 0) -> RayRun:
        """Dispatch every shard to an idle actor; hand each chunk it yields to `on_chunk`.

        `payload_for(key)` is called at each dispatch (a retry sees what earlier attempts wrote).
        A chunk with `stats` is a shard's closing statistics (collected in the result).

        Raises:
            InputError: a worker's InputError (bad input found on a worker), Ray missing or
                unreachable, or a shard whose workers died MAX_ATTEMPTS times.
        """
        with ray_cluster(self.options) as ray:
            replicas, cpus, gpus = replica_resources(ray, self.options)
            replicas = max(1, min(replicas, len(shards)))
            result = RayRun(shards=len(shards), replicas=replicas)
            if not shards:
                return result
            actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)(ShardWorker)

            def new_actor():
                actor = actor_class.remote(factory, kwargs)
                self.pids[actor] = _unwrap(ray, lambda: ray.get(actor.pid.remote()))
                return actor

            queue = list(shards)
            attempts: dict[str, int] = {}
            idle = [new_actor() for _ in range(replicas)]
            running: dict[Any, tuple[Any, str]] = {}  # generator -> (actor, shard key)
            with _Bar(progress_label, total_units) as bar:
                try:
                    while queue or running:
                        while queue and idle:
                            key = queue.pop(0)
                            attempts[key] = attempts.get(key, 0) + 1
                            actor = idle.pop()
                            running[actor.run.remote(payload_for(key))] = (actor, key)
                            self.running[key] = self.pids[actor]
                            result.dispatches += 1
                        ready, _ = ray.wait(list(running), num_returns=1)
                        for generator in ready:
                            actor, key = running[generator]
                            try:
                                chunk = ray.get(next(generator))
                            except StopIteration:
                                del running[generator]
                                self.running.pop(key, None)
                                idle.append(actor)
                                continue
                            except ray.exceptions.RayActorError:
                                del running[generator]
                                self.running.pop(key, None)
                                self.pids.pop(actor, None)
                                result.worker_deaths += 1
                                if attempts[key] >= MAX_ATTEMPTS:
                                    raise InputError(f"shard {key}: its worker died {attempts[key]} times "
                                                     "(out of memory? see the Ray logs)") from None
                                log.warning("shard %s: its worker died; dispatching it again", key)
                                queue.insert(0, key)
                                idle.append(new_actor())
                                continue
                            except ray.exceptions.RayTaskError as exc:
                                raise _cause(exc) from None
                            if "stats" in chunk:
                                result.stats.append(chunk["stats"])
                            else:
                                on_chunk(key, chunk)
                                bar.advance(len(chunk.get("units", ())))
                            if self.after_chunk is not None:
                                self.after_chunk(key, chunk)
                finally:
                    # idle actors close their executor first (MCP servers stopped, cache shard closed)
                    with contextlib.suppress(Exception):
                        ray.get([actor.close.remote() for actor in idle], timeout=60)
                    for actor in [*idle, *(a for a, _ in running.values())]:
                        with contextlib.suppress(Exception):
                            ray.kill(actor)
                    self.pids.clear()
                    self.running.clear()
            return result

    def run_batches(self, writer: Any, factory: Callable[..., Any], kwargs: dict[str, Any], items: Sequence[Any],
                    batch_size: int, unit_of: Callable[[Any], str], *, label: str | None = None) -> RayRun:
        """The batch stages' shards (rank, the filter's judge, augment): `items` not yet finished in
        the stage `writer`, in batches of `batch_size`, each appended by the driver as its worker
        yields it (`{"rows", "units"}`). A batch dispatched again leaves out its finished units."""
        finished = writer.finished_units()
        pending = [item for item in items if unit_of(item) not in finished]
        shards = {unit_of(pending[start]): pending[start:start + batch_size]
                  for start in range(0, len(pending), batch_size)}

        def payload(key: str) -> list[Any]:
            return [item for item in shards[key] if unit_of(item) not in finished]

        def append(_key: str, chunk: dict[str, Any]) -> None:
            writer.append(chunk["rows"], units=chunk["units"])
            finished.update(chunk["units"])

        return self.run_shards(factory, kwargs, list(shards), payload, append, progress_label=label,
                               total_units=len(pending))

    def map_batched(self, function: Callable[..., Any], jobs: Sequence[tuple]) -> list[Any]:
        """`[function(*job) for job in jobs]` as Ray tasks, the jobs bundled into about four tasks
        per replica (thousands of small APIs would otherwise be thousands of tiny tasks); order kept.
        A task lost with its worker is run again by Ray (`max_retries`): the jobs are pure."""
        if not jobs:
            return []
        with ray_cluster(self.options) as ray:
            bundles = max(1, min(len(jobs), 4 * self.replica_count()))
            size = -(-len(jobs) // bundles)
            task = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS)(_run_jobs)
            refs = [task.remote(function, list(jobs[start:start + size])) for start in range(0, len(jobs), size)]
            return [result for part in _unwrap(ray, lambda: ray.get(refs)) for result in part]

    def embed(self, texts: Sequence[str], model: str | None = None, batch_size: int = 64) -> Any:
        """Sentence embeddings of `texts` (as `imaginarium.embeddings.embed`) computed on Ray Data:
        the encoder loaded once per actor of a pool, `map_batches` over the texts, order kept."""
        import numpy as np

        from imaginarium.embeddings import embed

        if not texts:
            return embed([], model=model)
        with ray_cluster(self.options) as ray, warnings.catch_warnings():
            # Ray Data 2.60 warns about its own deprecated defaults when its context is made
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            pool = max(1, min(self.replica_count(), -(-len(texts) // batch_size)))
            dataset = ray.data.from_items([{"position": i, "text": text} for i, text in enumerate(texts)])
            encoded = dataset.map_batches(_Encoder, fn_constructor_kwargs={"model": model, "batch_size": batch_size},
                                          batch_size=batch_size, batch_format="numpy", num_cpus=1,
                                          compute=ray.data.ActorPoolStrategy(size=pool))
            vectors: Any = None
            for batch in _unwrap(ray, lambda: list(encoded.iter_batches(batch_format="numpy", batch_size=None))):
                if vectors is None:
                    vectors = np.zeros((len(texts), batch["vector"].shape[1]), dtype=np.float32)
                vectors[batch["position"]] = batch["vector"]
            return vectors


def _run_jobs(function: Callable[..., Any], jobs: list[tuple]) -> list[Any]:
    return [function(*job) for job in jobs]


class _Encoder:
    """A Ray Data actor: the sentence encoder, loaded once, embedding one batch per call."""

    def __init__(self, model: str | None, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from imaginarium.embeddings import embed

        vectors = embed([str(text) for text in batch["text"]], model=self.model, batch_size=self.batch_size)
        return {"position": batch["position"], "vector": vectors}


def _unwrap(ray, action: Callable[[], Any]) -> Any:
    """Run `action`; a worker's exception comes back as itself (an InputError stays one line)."""
    try:
        return action()
    except ray.exceptions.RayTaskError as exc:
        raise _cause(exc) from None


def _cause(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class _Bar:
    """A rich progress bar over units (none without a label or a total)."""

    def __init__(self, label: str | None, total: int):
        self.label, self.total = label, total
        self.bar: Any = None

    def __enter__(self) -> _Bar:
        if self.label and self.total:
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)


def open_engine(options: EngineOptions, engine: RayEngine | None = None) -> RayEngine | None:
    """The Ray engine a stage uses: the one handed in, one made from `options`, or None (local)."""
    if engine is not None:
        return engine
    if not options.on_ray:
        return None
    ray = import_ray()  # before any work: a missing Ray or an unreachable cluster is one line now
    if not ray.is_initialized():
        _check_reachable(options.ray_address or "local")
    return RayEngine(options)
