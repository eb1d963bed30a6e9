"""One study on many processes (`accelerate launch`, `torchrun`): who this process is, barriers, sharded work.

Training stages run on every process: the transformers Trainer and TRL spread them (DDP, FSDP or DeepSpeed, as the
launch config says). Everything that writes a study's files happens on the main process while the others wait at a
barrier; evaluation shards its batches across processes and gathers them in order. In a single process (no
WORLD_SIZE in the environment) every function here is a no-op, and accelerate is not even imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@functools.cache
def _state():
    """accelerate's process state: it joins the process group the launcher set up (gloo on CPUs, NCCL on GPUs)."""
    from accelerate import PartialState

    return PartialState()


def rank() -> int:
    return _state().process_index if world_size() > 1 else 0


def is_main() -> bool:
    return world_size() == 1 or _state().is_main_process


def barrier() -> None:
    if world_size() > 1:
        _state().wait_for_everyone()


def device():
    """This process's device: its own GPU under a launcher, else cuda or cpu."""
    import torch

    if world_size() > 1:
        return _state().device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (writing the files); the others run it after, reading them."""
    if world_size() == 1:
        yield
        return
    with _state().main_process_first():
        yield


def shard_map(fn: Callable[[int, Sequence[T]], list[R]], items: Sequence[T], chunk: int = 1,
              progress: Callable[[Iterable], Iterable] = iter) -> list[R]:  # fmt: skip
    """`fn(chunk number, chunk)` over `items` in chunks of `chunk` (one result per item), the chunks dealt
    round-robin to the processes, the results gathered back in item order on every process. The chunks are the
    same whatever the number of processes, so a chunk-seeded `fn` gives the same results on one or many."""
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    n, me = world_size(), rank()
    mine = {c: fn(c, chunks[c]) for c in progress(range(me, len(chunks), n))}
    if n > 1:
        import torch.distributed as dist

        gathered: list[dict] = [{} for _ in range(n)]
        dist.all_gather_object(gathered, mine)
        mine = {c: out for part in gathered for c, out in part.items()}
    return [r for c in range(len(chunks)) for r in mine[c]]


def from_main(fn: Callable[[], R]) -> R:
    """`fn()` on the main process, its result sent to every process."""
    if world_size() == 1:
        return fn()
    import torch.distributed as dist

    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
