"""Durable memory banks: FAISS index + write-ahead log + snapshots."""
