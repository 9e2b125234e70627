"""Picks up new and replaced checkpoints of the models directory without a restart.

Every ``model_poll_s`` seconds a background thread rescans the models directory
(``ModelRepository.refresh``): files whose size or time changed are fingerprinted and,
when their content is new, loaded off the serving path and swapped in. The ``LoadModel``
RPC runs the same scan at once (the explicit mode, with polling off).
"""

from __future__ import annotations

import logging
import threading

from memnet_server.binding import ModelCatalog

LOG = logging.getLogger(__name__)


class ModelPoller:
    def __init__(self, catalog: ModelCatalog, *, interval_s: float) -> None:
        self._catalog = catalog
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memnet-model-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()
        LOG.info("polling the models directory every %.1f s", self._interval_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                changed = self._catalog.refresh()
            except Exception:  # a scan that fails must not end the polling
                LOG.exception("scanning the models directory failed")
                continue
            for entry in changed:
                LOG.info("model %s: %s", entry.ref, entry.state.value)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
