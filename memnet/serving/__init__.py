"""Served models: the contract the server codes against, and its implementations.

``contract`` is the protocol (``ServedModel``, ``MemorySource``, ``ModelInfo``);
``text_model`` serves a MemN2N / KV-MemNN checkpoint (torch), ``vector_model`` is the
pass-through model (numpy only), ``bank_source`` adapts a bank's search into a
``MemorySource`` and ``registry`` names the models a server offers.
"""
