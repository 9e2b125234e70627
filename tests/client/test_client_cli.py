"""``memnet banks|write|query|explain`` end to end, in-process, against the test server."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from client_support import QA1_STORY, RunningServer, one_hot_keys

from memnet_cli import main
from memnet_cli.explain import DPI, figure_size
from memnet_client import MemnetClient

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIM = 4


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_banks_create_list_get_delete(
    server: RunningServer, bank_name: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, target = bank_name(), ("--target", server.target)
    code, out, _ = _run(
        capsys,
        "banks",
        "create",
        name,
        "--model",
        "vector",
        "--key-dim",
        "3",
        "--value-dim",
        "5",
        "--index",
        "hnsw",
        "--capacity",
        "10",
        *target,
    )
    assert code == 0 and f"name:        {name}" in out and "key 3, value 5" in out
    code, out, _ = _run(capsys, "banks", "list", *target)
    assert code == 0 and out.splitlines()[0].split() == [
        "NAME",
        "MODEL",
        "MEMORIES",
        "KEY_DIM",
        "VALUE_DIM",
        "INDEX",
    ]
    assert [name, "vector", "0", "3", "5", "hnsw"] in [line.split() for line in out.splitlines()]
    code, out, _ = _run(capsys, "banks", "get", name, *target)
    assert code == 0 and "capacity:    10 (reject)" in out
    code, out, _ = _run(capsys, "banks", "delete", name, *target)
    assert code == 0 and out.strip() == f"deleted bank {name}"
    code, _, err = _run(capsys, "banks", "get", name, *target)
    assert code == 2 and "NOT_FOUND" in err and name in err


def test_write_npy_then_query_and_explain(
    server: RunningServer,
    bank_name: Callable[[], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = bank_name()
    monkeypatch.setenv("MEMNET_TARGET", server.target)  # read when the parser is built
    assert (
        _run(
            capsys,
            "banks",
            "create",
            name,
            "--model",
            "vector",
            "--key-dim",
            str(DIM),
            "--value-dim",
            str(DIM),
        )[0]
        == 0
    )
    np.save(tmp_path / "keys.npy", one_hot_keys(DIM, DIM))
    np.save(tmp_path / "values.npy", np.eye(DIM, dtype=np.float64))
    code, out, _ = _run(
        capsys,
        "write",
        name,
        str(tmp_path / "keys.npy"),
        "--values",
        str(tmp_path / "values.npy"),
        "--id-prefix",
        "v",
        "--metadata",
        '{"source": "cli"}',
    )
    assert code == 0 and out.startswith(f"wrote {DIM} memories to {name} ({DIM} new")
    with MemnetClient(server.target) as client:
        stored = client.get(name, ["v2"], include_vectors=True)[0]
    assert stored.metadata == {"source": "cli"}
    np.testing.assert_array_equal(stored.value, np.eye(DIM)[2])

    np.save(tmp_path / "q.npy", np.eye(DIM, dtype=np.float32)[2])  # (Dk,)
    code, out, err = _run(
        capsys,
        "query",
        name,
        "--vector-npy",
        str(tmp_path / "q.npy"),
        "--k",
        "3",
        "--hops",
        "2",
    )
    assert code == 0 and "no answer head" in out and "(model vector" in err
    lines = out.splitlines()
    assert lines.count("hop 1") == 1 and lines.count("hop 2") == 1
    first_row = lines[lines.index("hop 1") + 2].split()
    assert first_row[2] == "v2" and float(first_row[0]) > 0.99
    np.save(tmp_path / "q_small.npy", np.eye(DIM, dtype=np.float32)[2] / 10)  # scores 1 and 0
    code, out, _ = _run(
        capsys, "query", name, "--vector-npy", str(tmp_path / "q_small.npy"), "--k", "2",
        "--tail-samples", "64",
    )  # fmt: skip
    tail_rows = [line for line in out.splitlines() if "outside the top k" in line]
    assert code == 0 and len(tail_rows) == 1
    # v2 scores 1 and the other DIM - 1 memories 0; one of those is listed, the rest is the tail
    expected = (DIM - 2) / (np.e + DIM - 1)
    assert float(tail_rows[0].split()[0]) == pytest.approx(expected, abs=1e-3)

    png = tmp_path / "attention.png"
    code, out, _ = _run(
        capsys,
        "explain",
        name,
        "--vector-npy",
        str(tmp_path / "q.npy"),
        "--k",
        "3",
        "--hops",
        "2",
        "-o",
        str(png),
    )
    assert code == 0 and out.startswith(f"wrote {png}")
    width, height = _png_size(png)
    columns = 3  # both hops attend to the same 3 memories (one-hot keys, identity values)
    expected = figure_size(2, columns)
    assert (width, height) == (round(expected[0] * DPI), round(expected[1] * DPI))


def test_cli_errors_exit_2_with_the_field(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "query", "some-bank", "--target", server.target)
    assert code == 2 and "[question]" in err
    code, _, err = _run(
        capsys, "write", "some-bank", str(tmp_path / "missing.txt"), "--target", server.target
    )
    assert code == 2 and "[source]" in err


def test_babi_story_demo(
    server: RunningServer,
    text_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, target = "babi-demo-cli", ("--target", server.target)
    story = tmp_path / "story.txt"
    story.write_text("\n".join(QA1_STORY) + "\n")
    assert _run(capsys, "banks", "create", name, *target)[0] == 0
    code, out, _ = _run(capsys, "write", name, str(story), *target)
    assert code == 0 and f"wrote {len(QA1_STORY)} memories" in out
    code, out, err = _run(capsys, "query", name, "Where is Mary?", *target)
    assert code == 0 and out.startswith("answer: bathroom")
    assert err.strip() == f"(model {text_model}@1, bank seq {len(QA1_STORY)})"
    png = tmp_path / "mary.png"
    assert _run(capsys, "explain", name, "Where is Mary?", "-o", str(png), *target)[0] == 0
    assert _png_size(png)[0] > 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("\nMary went to the kitchen.\n"))
    code, out, _ = _run(capsys, "write", name, "-", "--id-prefix", "late-", *target)
    assert code == 0 and out.startswith("wrote 1 memories")
    with MemnetClient(server.target) as client:
        assert [m.text for m in client.get(name, ["late-0"])] == ["Mary went to the kitchen."]


_NO_TORCH_CLI = textwrap.dedent(
    """
    import sys

    class Forbid:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "faiss"):
                raise ImportError(f"{name} is forbidden in this test")
            return None

    sys.meta_path.insert(0, Forbid())
    from memnet_cli import main

    code = main(["banks", "list", "--target", sys.argv[1]])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "faiss"))
    sys.exit(code or (3 if heavy else 0))
    """
)


def test_client_commands_run_without_torch(server: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_CLI, server.target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("NAME")
