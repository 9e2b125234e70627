"""The memory network (torch): MemN2N / KV-MemNN, its configuration and checkpoints.

The served forms of a checkpoint, which run it over banks, live in ``memnet.serving``.
"""
