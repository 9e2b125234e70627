"""Thin gRPC servicers: decode and validate the request, call the engine, encode the reply."""
