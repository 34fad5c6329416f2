"""`serkit serve MODEL ...`: arguments reach uvicorn and the app (uvicorn.run is replaced by a recorder;
the real server is started by the browser test)."""

from __future__ import annotations

import pytest
import uvicorn
from fastapi.testclient import TestClient

from serkit.cli import main


@pytest.fixture
def uvicorn_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    return calls


def test_serve_defaults_to_loopback_and_passes_the_limits(tiny_bundle, uvicorn_calls, capsys):
    assert main(["serve", str(tiny_bundle), "--port", "8123", "--max-upload-mb", "3", "--max-seconds", "40",
                 "--max-concurrent", "3", "--max-waiting", "5", "--timeout-seconds", "7",
                 "--upload-timeout-seconds", "8"]) == 0
    (app, options), = uvicorn_calls
    assert (options["host"], options["port"], options["limit_concurrency"]) == ("127.0.0.1", 8123, 3 + 5 + 32)
    assert (options["http"], options["h11_max_incomplete_event_size"], options["timeout_keep_alive"]) == (
        "h11", 16 * 1024, 5)
    limits = TestClient(app).get("/health").json()["limits"]
    assert (limits["max_upload_mb"], limits["max_seconds"], limits["max_concurrent"], limits["max_waiting"]) == (
        3, 40, 3, 5)
    assert (limits["timeout_seconds"], limits["upload_timeout_seconds"]) == (7, 8)
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
