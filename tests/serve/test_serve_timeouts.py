"""Timeouts and connection limits on real uvicorn (127.0.0.1, a free port, the options `serkit serve` gives
it): an inference over --timeout-seconds gets 504 and stops at its next window, keeping its slot until it has;
a client that stalls or trickles its body gets 408 after --upload-timeout-seconds while everyone else is
answered; uvicorn closes idle kept-alive connections, refuses oversized headers and answers 503 past
limit_concurrency. Slow headers (slowloris) are a reverse proxy's to cut (docs/serving.md)."""

from __future__ import annotations

import copy
import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serkit.serve import ServeLimits, create_app
from serkit.serve.limits import KEEP_ALIVE_SECONDS, MAX_HEADER_BYTES


class HeldModel:
    """The recognizer's model, slowed down and watched: each embed call (one batch = one 10 s window on CPU)
    waits for `gate` and then `delay` seconds."""

    def __init__(self, model, delay: float = 0.0, held: bool = False):
        self.model, self.delay = model, delay
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.lock = threading.Lock()
        self.calls = self.running = self.peak = 0

    @property
    def classifier(self):
        return self.model.classifier

    def embed(self, *args):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if not self.gate.wait(timeout=30):
                raise RuntimeError("the test never opened the gate")
            time.sleep(self.delay)
            return self.model.embed(*args)
        finally:
            with self.lock:
                self.running -= 1


def slowed(recognizer, **options) -> tuple:
    """-> (a copy of the recognizer whose model is a HeldModel, that HeldModel)."""
    slow = copy.copy(recognizer)
    slow.model = HeldModel(recognizer.model, **options)
    slow.batch_seconds = 10.0  # one window per batch: a stop point between windows
    return slow, slow.model


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


def health(server) -> dict:
    answer = httpx.get(f"{server.url}/health", timeout=5)
    assert answer.status_code == 200
    return answer.json()


def post(server, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", files={"file": (name, data, "audio/wav")}, timeout=30)


def test_an_inference_over_the_timeout_gets_504_and_stops_at_its_next_window(recognizer, make_audio, live_server):
    slow, model = slowed(recognizer, delay=0.25)
    server = live_server(create_app(slow, ServeLimits(max_concurrent=1, timeout_seconds=0.6)))
    long_audio = make_audio(60.0)  # 11 windows: 2.75 s of model time if nothing stopped it
    started = time.monotonic()
    answer = post(server, "long.wav", long_audio)
    took = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    detail = answer.json()["detail"]
    assert "longer than this server's limit of 0.6 s" in detail and "--timeout-seconds" in detail
    assert took < 2.0
    wait_until(lambda: health(server)["running"] == 0, 3, "the timed-out inference to stop")
    assert model.calls <= 4 < 11  # it stopped at a window boundary, not after all 11
    calls = model.calls
    time.sleep(0.6)
    assert model.calls == calls  # and nothing runs on in the background
    short = post(server, "short.wav", make_audio(1.0))  # the slot is free again
    assert short.status_code == 200 and sum(short.json()["probabilities"].values()) == pytest.approx(1.0)


def test_a_timed_out_inference_keeps_its_slot_until_its_thread_has_stopped(recognizer, make_audio, live_server):
    slow, model = slowed(recognizer, held=True)
    server = live_server(create_app(slow, ServeLimits(max_concurrent=1, max_waiting=1, timeout_seconds=0.3)))
    try:
        timed_out = post(server, "two_windows.wav", make_audio(12.0))  # held inside its first window
        assert timed_out.status_code == 504
        state = health(server)
        assert (state["running"], state["waiting"]) == (1, 0)  # its thread still runs, and still counts
        with ThreadPoolExecutor(1) as pool:
            queued = pool.submit(post, server, "next.wav", make_audio(1.0))
            wait_until(lambda: health(server)["waiting"] == 1, 10, "the next request to queue")
            refused = post(server, "third.wav", make_audio(1.0))  # 1 stopping + 1 waiting = the capacity
            assert refused.status_code == 503 and "server busy" in refused.json()["detail"]
            assert model.running == 1 and model.calls == 1  # the queued one has not started beside it
            model.gate.set()  # the held window finishes; the next read stops the thread
            answer = queued.result(timeout=20)
        assert answer.status_code == 200, answer.text
        assert model.peak == 1 and model.calls == 2  # one window of the timed-out request, one of the next
        wait_until(lambda: health(server)["running"] == health(server)["waiting"] == 0, 5, "an idle server")
    finally:
        model.gate.set()


def connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.settimeout(10)
    return connection


def read_until_closed(connection: socket.socket) -> tuple[bytes, float]:
    """-> (everything the server sent until it closed the connection, seconds that took). A reset after the
    response counts as the close: a client still sending when the server closes gets a RST from its kernel."""
    started, chunks = time.monotonic(), []
    try:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        if not chunks:
            raise
    return b"".join(chunks), time.monotonic() - started


def read_one_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")))
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


MULTIPART_HEAD = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                  b"Content-Length: 100000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"; "
                  b"filename=\"a.wav\"\r\n\r\n")


def test_a_stalled_or_trickling_upload_gets_408_while_others_are_served(recognizer, make_audio, live_server):
    server = live_server(create_app(recognizer, ServeLimits(upload_timeout_seconds=1.0)))
    audio = make_audio(1.0)
    stalled = connect(server.port)
    stalled.sendall(MULTIPART_HEAD + audio[:5000])  # then nothing
    trickling = connect(server.port)
    trickling.sendall(MULTIPART_HEAD)
    stop = threading.Event()

    def trickle():  # a byte every 0.1 s: never idle for long, never done
        for byte in audio[:200]:
            # stop once the server has answered: a byte sent after its close would be answered by a RST, which
            # can discard the 408 before the test reads it
            if stop.is_set() or select.select([trickling], [], [], 0)[0]:
                return
            try:
                trickling.send(bytes([byte]))
            except OSError:  # the server closed it
                return
            time.sleep(0.1)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    try:
        wait_until(lambda: health(server)["waiting"] == 2, 5, "both to be admitted")  # and uploading
        good = post(server, "ok.wav", audio)  # served while the two hang
        assert good.status_code == 200 and good.json()["label"] in recognizer.labels
        for connection in (stalled, trickling):
            response, took = read_until_closed(connection)
            assert response.startswith(b"HTTP/1.1 408"), response[:200]
            assert b"connection: close" in response.lower()
            detail = json_body(response)["detail"]
            assert "within 1 s (--upload-timeout-seconds)" in detail and "bytes came" in detail
            assert took < 5
    finally:
        stop.set()
        feeder.join(timeout=10)
        stalled.close()
        trickling.close()
    state = health(server)
    assert (state["running"], state["waiting"]) == (0, 0)  # their admission tickets are back
    assert server.thread.is_alive()


def test_uvicorn_closes_idle_kept_alive_connections_and_refuses_oversized_headers(recognizer, live_server):
    server = live_server(create_app(recognizer, ServeLimits()))
    silent = connect(server.port)  # connects and sends nothing (slowloris)
    kept_alive = connect(server.port)
    kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = read_one_response(kept_alive)
    assert first.startswith(b"HTTP/1.1 200") and json_body(first)["status"] == "ok"
    try:
        rest, took = read_until_closed(kept_alive)  # idle after its answer: closed by uvicorn
        assert rest == b"" and KEEP_ALIVE_SECONDS - 0.5 <= took < KEEP_ALIVE_SECONDS + 4
        # uvicorn has no deadline on headers: the silent one is still held. docs/serving.md gives that job
        # (client_header_timeout) to a reverse proxy; if this starts failing, uvicorn has learnt it: say so there
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):
            silent.recv(1)
        # headers that grow past MAX_HEADER_BYTES while incomplete: refused (sent in two reads, so the answer
        # is not lost to a reset while we are still sending); below it, answered
        too_big = connect(server.port)
        too_big.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES // 2))
        time.sleep(0.2)
        too_big.sendall(b"a" * (MAX_HEADER_BYTES // 2))
        response, _ = read_until_closed(too_big)
        assert response.startswith(b"HTTP/1.1 400")
        assert httpx.get(f"{server.url}/health", headers={"X-Big": "a" * (MAX_HEADER_BYTES // 2)}).status_code == 200
    finally:
        silent.close()
        kept_alive.close()
    assert server.thread.is_alive()


def test_connections_past_limit_concurrency_get_503_until_they_go(recognizer, live_server):
    limits = ServeLimits(max_concurrent=1, max_waiting=0)
    server = live_server(create_app(recognizer, limits))
    flood = [connect(server.port) for _ in range(limits.uvicorn_options()["limit_concurrency"])]
    try:
        # uvicorn turns requests away while the connections are all taken (memory and sockets stay bounded)
        wait_until(lambda: httpx.get(f"{server.url}/health", timeout=5).status_code == 503, 1.5,
                   "uvicorn's 503 while the flood holds every connection")
    finally:
        for connection in flood:
            connection.close()
    wait_until(lambda: httpx.get(f"{server.url}/health", timeout=5).status_code == 200, 5,
               "/health to answer again once they hang up")


def test_a_stopped_inference_is_logged_as_stopped_and_its_threads_never_block_exit(caplog):
    """Unit level: the inference threads are daemons (one that never returns cannot keep the process alive), and
    an inference that stops when asked (CancelledError) is logged as stopped, not as failed."""
    import asyncio
    import logging
    import threading
    from concurrent.futures import CancelledError

    from starlette.exceptions import HTTPException

    from serkit.serve.slots import InferenceSlots

    def stops_when_asked(cancel):
        cancel.wait(5)
        raise CancelledError("prediction cancelled by its caller")

    async def scenario():
        slots = InferenceSlots(max_concurrent=2, max_waiting=0)
        with pytest.raises(HTTPException) as timeout:
            await slots.run(slots.admit(), 0.05, stops_when_asked)
        for _ in range(100):
            if slots.running == 0:
                break
            await asyncio.sleep(0.02)
        assert await slots.run(slots.admit(), 5, lambda cancel: 42) == 42
        return timeout.value.status_code, slots.running

    with caplog.at_level(logging.INFO, logger="serkit.serve"):
        assert asyncio.run(scenario()) == (504, 0)
    assert "a timed-out inference has stopped" in caplog.text and "failed" not in caplog.text
    workers = [t for t in threading.enumerate() if t.name.startswith("serkit-inference")]
    assert workers and all(t.daemon for t in workers)
