"""memnet's gRPC server: ``create_server(settings) -> (server, port)``."""

from memnet_server.app import MemnetService, create_server
from memnet_server.config import ServerSettings, load_settings

__all__ = ["MemnetService", "ServerSettings", "create_server", "load_settings"]
