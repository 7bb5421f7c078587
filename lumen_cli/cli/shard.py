"""``--shard K/N``: a deterministic share of a batch, for arrays of jobs with no coordinator.

Every worker is given the same INPUT arguments and its own K. The inputs are listed and their
outputs planned exactly as without sharding (so the output names do not depend on N), then
sorted by input path and dealt out round-robin: shard K (0 <= K < N) takes the inputs at
positions K, K+N, K+2N, ... The N shards together cover every input exactly once, and their
sizes differ by at most one.
"""

from __future__ import annotations

import re

from lumen_cli.errors import UsageError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """'K/N' -> (K, N) with 0 <= K < N; None for None. Raises UsageError otherwise."""
    if spec is None:
        return None
    m = _SPEC.match(spec)
    if not m:
        raise UsageError(f"--shard {spec!r}: expected K/N, e.g. 0/4 (K counts from 0)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise UsageError(
            f"--shard {spec}: need N >= 1 and 0 <= K < N "
            "(with Slurm use --array=0-(N-1) and --shard $SLURM_ARRAY_TASK_ID/N)"
        )
    return k, n


def take_shard(jobs: list, shard: tuple[int, int] | None, key=lambda j: j.source) -> list:
    """The jobs of shard (K, N): sorted by ``key`` (the input path), every N-th from K."""
    if shard is None:
        return jobs
    k, n = shard
    return sorted(jobs, key=key)[k::n]
