"""Service test set-up: the tiny bundle's recognizer, audio files made in memory, a real uvicorn server."""

from __future__ import annotations

import io
import socket
import threading
import time

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
    there is no race for the port)."""

    def __init__(self, app):
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> "LiveServer":
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
