"""Service test set-up: the tiny bundle's recognizer, audio files made in memory, a real uvicorn server."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def recognizer(tiny_bundle):
    from serkit import EmotionRecognizer

    return EmotionRecognizer.load(tiny_bundle)


def audio_bytes(seconds: float, sample_rate: int = 16000, channels: int = 1, seed: int = 0,
                format: str = "WAV", subtype: str | None = None) -> bytes:
    """A file in memory: a seed-dependent chirp in noise (different seeds -> different predictions)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 120 + 40 * seed + 30 * np.sin(2 * np.pi * 0.5 * t)
    tone = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / sample_rate) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    frames = np.stack([tone + 0.05 * rng.standard_normal(t.shape) for _ in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, frames.astype(np.float32), sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture
def make_audio():
    return audio_bytes


class LiveServer:
    """The app on real uvicorn in a thread, on 127.0.0.1 and a free port (the socket is bound first, so
    there is no race for the port), with the options `serkit serve` gives uvicorn."""

    def __init__(self, app):
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    **app.state.limits.uvicorn_options()))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 15 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


@pytest.fixture
def live_server():
    """live_server(app) -> a started LiveServer; every one is stopped after the test."""
    servers: list[LiveServer] = []

    def start(app) -> LiveServer:
        servers.append(LiveServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class ServeProcess:
    """`serkit serve BUNDLE ARGS...` as a user runs it: its own process, on 127.0.0.1 and a free port, output
    to `log`. `env` is added to this process's environment."""

    def __init__(self, bundle: Path, *args: str, log: Path, env: dict | None = None):
        with socket.socket() as probe:  # a free port (released for the server to bind)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serkit", "serve", str(bundle), "--port", str(self.port), *args],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
            )
        self.pid = self.process.pid

    def wait_until_up(self, seconds: float = 60) -> ServeProcess:
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serkit serve did not come up:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def serve_process(tiny_bundle):
    """serve_process(*args, log=PATH, env=None) -> a ServeProcess of the tiny bundle, up and answering /health;
    any still running at the end of the session is stopped."""
    started: list[ServeProcess] = []

    def start(*args: str, log: Path, env: dict | None = None) -> ServeProcess:
        started.append(ServeProcess(tiny_bundle, *args, log=log, env=env))
        return started[-1].wait_until_up()

    yield start
    for server in started:
        if server.alive():
            server.stop()
