"""Memory banks in Milvus: the ``milvus`` store backend (``pip install memnet[milvus]``).

Each bank is a Milvus collection and the bank catalog is a Milvus collection too, so
memnet servers in front of one Milvus are stateless replicas of each other. pymilvus is
imported on first use only: importing this package costs nothing, and the FAISS store
never loads it. See docs/scale.md for what each layer promises.
"""

from __future__ import annotations

from memnet.store_milvus.connection import MilvusSettings
from memnet.store_milvus.store import MilvusStore

__all__ = ["MilvusSettings", "MilvusStore"]
