"""Which of the client's channels serves the next attempt of a call.

A client has one channel per entry of its target plan (``_targets``): usually
one, which gRPC itself balances when it names several servers (``round_robin``).
With several channels (a list of host names) the client balances: each call
starts on the next channel in turn (the first turn is drawn at random, so that
short-lived clients such as command-line runs spread over the replicas too),
and an attempt that fails with UNAVAILABLE
moves to a channel this call has not tried yet. A channel that answered
UNAVAILABLE is passed over for ``COOLDOWN_S`` while another one is in good
standing, so that calls that cannot be retried (non-idempotent writes) are not
sent to a replica known to be down; after that it gets its turn again.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from memnet_client._rpcs import Stubs

LOG = logging.getLogger(__name__)

COOLDOWN_S = 5.0


@dataclass(frozen=True)
class Replica:
    """One channel of the client: its position, what it connects to, its stubs."""

    index: int
    target: str
    stubs: Stubs


class Replicas:
    """Rotation and failover over a client's channels; safe to share between threads."""

    def __init__(self, replicas: Sequence[tuple[str, Stubs]]) -> None:
        assert replicas, "a client has at least one channel"
        self.all = tuple(Replica(i, target, stubs) for i, (target, stubs) in enumerate(replicas))
        self._turn = itertools.count(random.randrange(len(self.all)))  # next() is atomic
        self._failed_at_s = [float("-inf")] * len(self.all)  # time.monotonic() of last UNAVAILABLE

    def pick(self, tried: Collection[int]) -> Replica:
        """The replica for the next attempt: untried and in good standing first, in rotation."""
        n = len(self.all)
        if n == 1:
            return self.all[0]
        start = next(self._turn) % n
        order = [self.all[(start + i) % n] for i in range(n)]
        now_s = time.monotonic()
        for replica in order:
            if replica.index not in tried and now_s - self._failed_at_s[replica.index] > COOLDOWN_S:
                return replica
        for replica in order:
            if replica.index not in tried:
                return replica
        return min(order, key=lambda replica: self._failed_at_s[replica.index])

    def untried(self, tried: Collection[int]) -> bool:
        """Whether some replica has not been tried by this call yet."""
        return len(tried) < len(self.all)

    def mark_unavailable(self, replica: Replica) -> None:
        """Record that ``replica`` answered UNAVAILABLE (it is passed over for a while)."""
        if len(self.all) > 1:
            LOG.debug("replica %s unavailable: passed over for %.0f s", replica.target, COOLDOWN_S)
        self._failed_at_s[replica.index] = time.monotonic()
