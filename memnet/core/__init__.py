"""The ground floor: leaf types and checks that every other layer may import.

Nothing here imports torch, faiss, grpc or any other part of memnet except
``memnet.errors``: the store, the network, the served models, the server, the
SDK and the command line all stand on these modules, never the other way round.
"""
