"""Generated gRPC code for the memnet.api.v1 protos (``bash scripts/gen_proto.sh``).

Do not edit the ``*_pb2*`` modules by hand; ``tests/test_proto_generated.py``
checks that they match ``proto/``.
"""
