"""`serkit serve MODEL ...`: arguments reach uvicorn and the app (uvicorn.run is replaced by a recorder;
the real server is started by the browser test)."""

from __future__ import annotations

import pytest
import uvicorn
from fastapi.testclient import TestClient

from serkit.cli import main


@pytest.fixture
def uvicorn_calls(monkeypatch):
    from serkit.serve import server

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    # process-wide: recorded here, tried for real in a process of its own below
    monkeypatch.setattr(server, "limit_malloc_arenas", lambda: calls.append(("arenas", None)))
    return calls


def test_serve_defaults_to_loopback_and_passes_the_limits(tiny_bundle, uvicorn_calls, capsys):
    assert main(["serve", str(tiny_bundle), "--port", "8123", "--max-upload-mb", "3", "--max-seconds", "40",
                 "--max-concurrent", "3", "--max-waiting", "5", "--timeout-seconds", "7",
                 "--upload-timeout-seconds", "8", "--header-timeout-seconds", "9"]) == 0
    assert uvicorn_calls[0] == ("arenas", None)  # set before the server starts
    (app, options), = uvicorn_calls[1:]
    assert (options["host"], options["port"], options["limit_concurrency"]) == ("127.0.0.1", 8123, 3 + 5 + 32)
    assert options["http"].header_timeout_seconds == 9 and options["timeout_keep_alive"] == 5
    limits = TestClient(app).get("/health").json()["limits"]
    assert (limits["max_upload_mb"], limits["max_seconds"], limits["max_concurrent"], limits["max_waiting"]) == (
        3, 40, 3, 5)
    assert (limits["timeout_seconds"], limits["upload_timeout_seconds"], limits["header_timeout_seconds"]) == (7, 8, 9)
    assert TestClient(app).get("/labels").json()["labels"] == ["neu", "hap", "ang", "sad"]
    captured = capsys.readouterr()
    assert "http://127.0.0.1:8123/" in captured.out and "warning" not in captured.err


def test_serve_warns_when_listening_beyond_this_machine(tiny_bundle, uvicorn_calls, capsys):
    assert main(["serve", str(tiny_bundle), "--host", "0.0.0.0"]) == 0
    assert uvicorn_calls[-1][1]["host"] == "0.0.0.0"
    assert "no authentication" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--max-upload-mb", "0"), ("--max-seconds", "-1"), ("--max-concurrent", "0"),
                                         ("--timeout-seconds", "0"), ("--upload-timeout-seconds", "-1")])
def test_serve_refuses_limits_that_are_not_positive(tiny_bundle, uvicorn_calls, capsys, flag, value):
    assert main(["serve", str(tiny_bundle), flag, value]) == 1
    assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err.replace("-", "_")
    assert not uvicorn_calls


def test_serve_names_a_missing_bundle(tmp_path, uvicorn_calls, capsys):
    assert main(["serve", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err and not uvicorn_calls


@pytest.mark.parametrize("env, expected", [({}, "True"), ({"MALLOC_ARENA_MAX": "4"}, "False")])
def test_the_malloc_arena_limit_is_set_unless_the_environment_says_otherwise(env, expected):
    import os
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the arena limit is glibc's (elsewhere limit_malloc_arenas does nothing)")
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")} | env
    done = subprocess.run([sys.executable, "-c", "from serkit.serve.server import limit_malloc_arenas as f; "
                           "print(f())"], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == expected, done.stderr
