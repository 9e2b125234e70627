"""docs/deploy.md must list every server setting as an environment variable."""

from __future__ import annotations

from pathlib import Path

from memnet_server.config import ServerSettings

DEPLOY_DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"


def test_every_server_setting_is_documented_for_deployment() -> None:
    text = DEPLOY_DOC.read_text()
    missing = [
        f"MEMNET_{name.upper()}"
        for name in ServerSettings.model_fields
        if f"`MEMNET_{name.upper()}`" not in text
    ]
    assert not missing, f"docs/deploy.md does not list {missing}"
