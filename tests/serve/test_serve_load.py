"""The service on real uvicorn (127.0.0.1, a free port) under load, clients in threads with httpx:
answers stay correct with 16 clients at once; inference is off the event loop (/health answers while
inferences run) and bounded (max_concurrent run, max_waiting queue, the rest get 503); bad requests and
clients that hang up mid-upload leave the server up. Every loop here is bounded in count and time."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import pytest

from serkit.serve import ServeLimits, create_app


class Watched:
    """The recognizer, watched: counts predict calls running at once; with hold=True they wait for release."""

    def __init__(self, recognizer, hold: bool = False):
        self.recognizer, self.labels = recognizer, recognizer.labels
        self.lock = threading.Lock()
        self.running = self.peak = self.calls = 0
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def predict(self, audio, **options):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            if not self.release.wait(timeout=30):
                raise RuntimeError("the test never released the held inferences")
            return self.recognizer.predict(audio, **options)
        finally:
            with self.lock:
                self.running -= 1


def expected_predictions(recognizer, files: dict[str, bytes], folder) -> dict[str, dict]:
    """The recognizer's own answer for each file, read from disk."""
    answers = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        answers[name] = recognizer.predict(folder / name).to_dict()
    return answers


def assert_same_prediction(got: dict, want: dict) -> None:
    assert got["label"] == want["label"] and got["duration"] == pytest.approx(want["duration"])
    assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    assert [w["label"] for w in got["windows"]] == [w["label"] for w in want["windows"]]


def post(url: str, name: str, data: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": (name, data, "audio/wav")}, timeout=timeout)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


def test_sixteen_concurrent_clients_all_get_their_own_correct_answer(recognizer, make_audio, live_server, tmp_path):
    files = {f"clip{i}.wav": make_audio(0.5 + 0.4 * i, sample_rate=(16000, 22050, 44100)[i % 3], channels=1 + i % 2,
                                        seed=i) for i in range(8)}
    files["long.wav"] = make_audio(12.0, seed=9)  # two windows
    expected = expected_predictions(recognizer, files, tmp_path)
    watched = Watched(recognizer)
    server = live_server(create_app(watched, ServeLimits(max_concurrent=3)))
    names = sorted(files)

    def client(k: int) -> list[tuple[str, int, dict]]:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            results = []
            for j in range(4):
                name = names[(k + j) % len(names)]
                answer = http.post("/predict", files={"file": (name, files[name], "audio/wav")})
                results.append((name, answer.status_code, answer.json()))
            return results

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client, k) for k in range(16)]
        _, late = wait(futures, timeout=60)
    assert not late, "clients did not finish within 60 s"
    results = [result for future in futures for result in future.result()]
    assert len(results) == 64
    for name, status, body in results:
        assert status == 200, body
        assert body["source"] == name
        assert_same_prediction(body, expected[name])
    assert watched.calls == 64 and 1 <= watched.peak <= 3


def test_health_answers_while_inferences_run_and_the_queue_is_bounded(recognizer, make_audio, live_server):
    watched = Watched(recognizer, hold=True)
    server = live_server(create_app(watched, ServeLimits(max_concurrent=2, max_waiting=2)))
    audio = make_audio(1.0)
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(post, server.url, f"c{i}.wav", audio) for i in range(8)]
            # 2 run (held), 2 wait for a slot, the other 4 are turned away at once
            wait_until(lambda: sum(f.done() for f in futures) == 4 and watched.running == 2, 20,
                       "4 refusals and 2 running inferences")
            refused = [f.result() for f in futures if f.done()]
            assert [r.status_code for r in refused] == [503] * 4
            assert all("server busy" in r.json()["detail"] and r.headers["retry-after"] == "1" for r in refused)
            started = time.monotonic()
            health = httpx.get(f"{server.url}/health", timeout=5)
            assert health.status_code == 200 and time.monotonic() - started < 5
            assert (health.json()["running"], health.json()["waiting"]) == (2, 2)
            assert httpx.get(f"{server.url}/labels", timeout=5).json()["labels"] == recognizer.labels
            watched.release.set()
            _, late = wait(futures, timeout=30)
        assert not late
        answered = [f.result() for f in futures if f.result().status_code != 503]
        assert [r.status_code for r in answered] == [200] * 4
        assert watched.peak == 2 and watched.calls == 4
    finally:
        watched.release.set()


def test_a_burst_of_large_uploads_is_served_with_bounded_concurrency(recognizer, make_audio, live_server, tmp_path):
    # 33 s at 16 kHz: just past Starlette's 1 MiB in-memory spool, six windows per file
    files = {f"big{i}.wav": make_audio(33.0, seed=i) for i in range(4)}
    expected = expected_predictions(recognizer, files, tmp_path)
    watched = Watched(recognizer)
    server = live_server(create_app(watched, ServeLimits(max_concurrent=2)))
    health_answers, stop = [], threading.Event()

    def poll_health():
        with httpx.Client(timeout=5) as http:
            for _ in range(2000):  # bounded; ends when the burst does
                if stop.is_set():
                    return
                answer = http.get(f"{server.url}/health")
                health_answers.append((answer.status_code, answer.json()["running"]))
                time.sleep(0.05)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        with ThreadPoolExecutor(32) as pool:
            names = [f"big{i % 4}.wav" for i in range(32)]
            futures = [pool.submit(post, server.url, name, files[name], 60) for name in names]
            _, late = wait(futures, timeout=90)
        assert not late
    finally:
        stop.set()
        poller.join(timeout=10)
    for name, future in zip(names, futures):
        answer = future.result()
        assert answer.status_code == 200, answer.text
        assert_same_prediction(answer.json(), expected[name])
    assert watched.calls == 32 and watched.peak <= 2
    assert health_answers and all(status == 200 for status, _ in health_answers)
    assert max(running for _, running in health_answers) >= 1  # /health was answered while inferences ran


def raw_request(port: int, payload: bytes, read: bool = True) -> bytes:
    """Send bytes on a fresh connection; -> what came back (b"" if we hang up without reading)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(payload)
        if not read:
            return b""
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def chunked_upload(size: int):
    """A multipart body from a generator: httpx sends it chunked, without a Content-Length to check."""
    yield b'--zz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    for _ in range(size // 10_000):
        yield b"\0" * 10_000


def test_bad_requests_and_hang_ups_leave_the_server_answering(recognizer, make_audio, live_server):
    server = live_server(create_app(recognizer, ServeLimits(max_upload_bytes=200_000, max_seconds=5)))
    audio = make_audio(1.0)
    bad = [
        ({"content": audio, "headers": {"content-type": "audio/wav"}}, 415),
        ({"content": b"", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 422),
        ({"content": b"--zz\r\nbroken\r\n\r\n", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 400),
        ({"files": {"file": ("x.txt", b"not audio at all" * 30)}}, 415),
        ({"files": {"file": ("big.wav", b"\0" * 300_000)}}, 413),
        ({"files": {"file": ("long.wav", make_audio(6.0, sample_rate=8000))}}, 413),
        ({"content": chunked_upload(400_000), "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 413),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for request, status in bad:
            answer = http.post("/predict", **request)
            assert answer.status_code == status and isinstance(answer.json()["detail"], str)
            assert http.get("/health").status_code == 200
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                b"Content-Length: 100000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"; "
                b"filename=\"a.wav\"\r\n\r\n")
        raw_request(server.port, head + audio[:5000], read=False)  # hangs up mid-upload
        assert http.get("/health").status_code == 200
        assert raw_request(server.port, b"\x16\x03\x01 this is not HTTP\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert http.get("/health").status_code == 200
        good = http.post("/predict", files={"file": ("ok.wav", audio)})
        assert good.status_code == 200 and good.json()["label"] in recognizer.labels
    assert server.thread.is_alive()
