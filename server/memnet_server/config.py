"""Server settings: defaults ← TOML file ← ``MEMNET_*`` environment variables ← flags.

Every field is documented with its unit and default; ``docs/server.md`` lists them
all with their environment variables.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from memnet.errors import InvalidArgument
from memnet.store.types import FsyncPolicy

ENV_PREFIX = "MEMNET_"
CONFIG_FILE_ENV = "MEMNET_CONFIG"
MIB = 1024 * 1024


class ServerSettings(BaseSettings):
    """Everything ``memnet serve`` can be told. Field names are the TOML keys; the
    environment variable of ``field`` is ``MEMNET_FIELD`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # Network.
    host: str = Field(default="127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 = any free port.")
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of the Prometheus endpoint."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus port; 0 = off (the container: 9464)."
    )
    metrics_bank_labels: Literal["names", "hashed", "none"] = Field(
        default="hashed",
        description="Bank label of memnet_bank_memories: names | hashed | none.",
    )

    # Storage.
    data_dir: Path = Field(default=Path("memnet-data"), description="Directory holding every bank.")
    fsync: FsyncPolicy = Field(default=FsyncPolicy.ALWAYS, description="always | interval | none.")
    fsync_interval_ms: int = Field(default=50, ge=1, description="fsync period for fsync=interval.")
    snapshot_after_log_mib: int = Field(
        default=256, ge=1, description="Snapshot a bank and truncate its log past this size."
    )
    snapshot_after_log_records: int = Field(
        default=50_000, ge=1, description="... or once its log holds this many records."
    )
    snapshot_after_log_age_s: float = Field(
        default=3600.0, gt=0, description="... or once its oldest record is this old."
    )
    bank_open_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="At startup, wait this long for every bank to open before reporting "
        "SERVING; banks still opening then serve once open (health 'memnet.banks').",
    )

    # Where banks live: the embedded FAISS store (data_dir), or Milvus (stateless replicas).
    store: Literal["faiss", "milvus"] = Field(
        default="faiss", description="Bank store: faiss (in data_dir) or milvus (shared)."
    )
    milvus_uri: str = Field(
        default="http://127.0.0.1:19530", description="Milvus (or Milvus Lite server) URI."
    )
    milvus_token: SecretStr | None = Field(
        default=None, description='Milvus credentials, "user:password" or an API key.'
    )
    milvus_db: str = Field(default="default", description="Milvus database of the banks.")
    milvus_collection_prefix: str = Field(
        default="memnet_",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$",
        description="Prefix of every Milvus collection memnet makes.",
    )
    milvus_timeout_s: float = Field(
        default=10.0, gt=0.0, description="Longest wait for one Milvus request."
    )

    # Models.
    models_dir: Path | None = Field(
        default=None,
        description="Model repository: NAME/VERSION/model.pt, or *.pt as version 1 of "
        "the name stored in each.",
    )
    model_poll_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Rescan models_dir for new or replaced checkpoints every N s; 0 = only "
        "at start and on LoadModel.",
    )
    default_model: str | None = Field(
        default=None,
        description="Model of banks created without one; unset = the repository default.",
    )

    # Limits.
    max_message_bytes: int = Field(default=64 * MIB, ge=4 * MIB, description="gRPC message limit.")
    max_k: int = Field(default=1024, ge=1, le=4096, description="Largest k (memories per hop).")
    default_k: int = Field(default=32, ge=1, description="k when a query leaves it 0.")
    max_batch_queries: int = Field(default=256, ge=1, le=4096, description="Questions per Query.")
    max_write_memories: int = Field(default=10_000, ge=1, description="Memories per write message.")
    max_ids_per_call: int = Field(default=10_000, ge=1, description="Ids per Get/DeleteMemories.")
    max_page_size: int = Field(
        default=1000, ge=1, le=10_000, description="Largest ListMemories page."
    )
    max_top_answers: int = Field(default=100, ge=1, description="Largest top_answers of a query.")
    max_concurrent_rpcs: int = Field(
        default=256, ge=1, description="RPCs in flight; more are refused with RESOURCE_EXHAUSTED."
    )
    max_queued_queries: int = Field(
        default=1024, ge=1, description="Questions waiting per bank; more → RESOURCE_EXHAUSTED."
    )
    worker_threads: int = Field(
        default=32, ge=1, description="Threads running the RPC handlers kept off the event loop."
    )
    queries_on_loop: bool = Field(
        default=True,
        description="Run short queries on the event loop; false = every query in a worker thread.",
    )

    # Dynamic batching of queries to the same bank.
    batching_enabled: bool = Field(default=True, description="Batch concurrent queries per bank.")
    batching_max_delay_ms: float = Field(
        default=0.0, ge=0.0, le=1000.0, description="Extra wait for a batch to fill; 0 = no wait."
    )
    batching_max_batch: int = Field(default=64, ge=1, description="Questions per batched forward.")
    batching_workers: int = Field(default=2, ge=1, description="Batches running at once per bank.")

    # Shutdown.
    grace_s: float = Field(default=10.0, ge=0.0, description="Drain time for RPCs on shutdown.")

    # Security.
    api_keys_file: Path | None = Field(
        default=None, description="JSON/TOML API keys; unset = no auth."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain; enables TLS."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle; when set, clients must present a certificate."
    )

    # Logging.
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) must be <= max_k ({self.max_k})")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return self


def load_settings(config_file: Path | None = None, **flags: Any) -> ServerSettings:
    """Settings from (lowest to highest priority) defaults, the TOML file
    (``config_file`` or ``$MEMNET_CONFIG``), the environment, and ``flags``.

    Flags whose value is None are ignored, so argparse defaults of None fall through.
    """
    path = config_file or (
        Path(os.environ[CONFIG_FILE_ENV]) if CONFIG_FILE_ENV in os.environ else None
    )
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                file_values = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise InvalidArgument(
                f"cannot read config file {path}: {error}", field="config"
            ) from error
    env_values = EnvSettingsSource(ServerSettings)()
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return ServerSettings(**{**file_values, **env_values, **given})
    except ValueError as error:
        raise InvalidArgument(f"invalid server settings: {error}", field="config") from error
