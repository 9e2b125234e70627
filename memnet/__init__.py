"""memnet: a memory-augmented attention model served over gRPC.

Importing ``memnet`` is cheap and never imports torch or faiss: the Python SDK
(``memnet_client``) relies on ``memnet.api.v1`` only. The heavy parts live in
``memnet.store`` (faiss) and ``memnet.model`` (torch).

Shape vocabulary, used in names and ``# (B, K, D)`` comments everywhere:

====  ==========================================================
B     batch (queries or stories)
M     memories in a bank or sentences in a story
K     memories retrieved per hop (top-k)
H     hops
D     embedding dimension (Dk key, Dv value where they differ)
V     vocabulary size (A: answer vocabulary size)
T     words per sentence
====  ==========================================================
"""

from __future__ import annotations

__version__ = "0.1.0"
