"""The memory network (torch): MemN2N / KV-MemNN, its served forms and their registry.

``serving`` holds the contract the server codes against; ``served`` and ``vector``
implement it; ``registry`` names the models a server offers.
"""
