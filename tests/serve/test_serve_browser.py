"""The web page end to end in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
against `serkit serve` started as a real process on 127.0.0.1: upload a file, read the bars; a long file
shows the timeline; a recording from Chromium's fake microphone is converted to WAV and predicted.
Screenshots go to the test's tmp_path and to $SERKIT_TEST_ARTIFACTS (default tests/artifacts/)."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google, which this machine refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
REPO = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("SERKIT_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, artifacts_dir() / name)
    return path


@pytest.fixture(scope="module")
def server_url(serve_process, tmp_path_factory):
    """`serkit serve` in its own process on a free loopback port; stopped after the module."""
    server = serve_process("--max-seconds", "60", log=tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium (apt-get install chromium) "
                    "when it runs as root")
    from playwright.sync_api import sync_playwright

    # The page runs under its own Content-Security-Policy (no bypass): the test shows it works with it.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server_url):
    context = browser.new_context(viewport={"width": 900, "height": 800})
    context.grant_permissions(["microphone"], origin=server_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server_url)
    expect(page.locator("#limits")).to_contain_text("MB", timeout=10_000)  # /labels and /health answered
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def read_bars(page) -> dict[str, float]:
    """{label: percent shown} from the bars."""
    rows = page.eval_on_selector_all(
        ".bar", "bars => bars.map(b => [b.dataset.label, b.querySelector('.bar-value').textContent])")
    return {label: float(text.rstrip("%")) for label, text in rows}


def upload(page, path: Path) -> None:
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#status")).to_have_text(f"Done: {path.name}", timeout=20_000)


def test_uploaded_file_shows_one_bar_per_class(page, recognizer, make_audio, tmp_path):
    wav = tmp_path / "hello.wav"
    wav.write_bytes(make_audio(3.0, sample_rate=22050, seed=4))
    upload(page, wav)
    bars = read_bars(page)
    expected = recognizer.predict(wav)
    assert list(bars) == recognizer.labels
    assert sum(bars.values()) == pytest.approx(100, abs=0.25)
    for label, shown in bars.items():
        assert shown == pytest.approx(100 * expected.probabilities[label], abs=0.06)
    assert page.get_attribute(".bar.top", "data-label") == expected.label
    assert f"most likely {expected.label}" in page.text_content("#summary")
    assert page.is_hidden("#timeline") and page.is_hidden("#error")
    width = page.eval_on_selector(f'.bar[data-label="{expected.label}"] .bar-fill', "e => e.style.width")
    assert float(width.rstrip("%")) == pytest.approx(bars[expected.label], abs=0.06)
    assert screenshot(page, tmp_path, "serve_page_short.png").stat().st_size > 10_000


def test_long_file_shows_the_emotion_over_time(page, recognizer, make_audio, tmp_path):
    wav = tmp_path / "long_talk.wav"
    # five 5 s stretches of different "voices", so the windows need not agree
    pieces = [sf.read(io.BytesIO(make_audio(5.0, seed=seed)), dtype="float32")[0] for seed in (0, 0, 5, 5, 2)]
    sf.write(wav, np.concatenate(pieces), 16000)
    upload(page, wav)
    expected = recognizer.predict(wav)
    assert page.is_visible("#timeline")
    segments = page.eval_on_selector_all(".segment", "s => s.map(e => e.dataset.label)")
    assert segments == [window.label for window in expected.windows] and len(segments) == 4
    series = page.eval_on_selector_all("#timeline-chart polyline.series", "s => s.map(e => e.dataset.label)")
    assert series == recognizer.labels
    points = page.get_attribute("#timeline-chart polyline.series", "points")
    assert len(points.split()) == 4
    assert sum(read_bars(page).values()) == pytest.approx(100, abs=0.25)
    assert "4 windows" in page.text_content("#summary")
    screenshot(page, tmp_path, "serve_page_timeline.png")


def test_recording_from_the_microphone_is_sent_as_wav(page, recognizer, tmp_path):
    page.click("#record-button")
    page.wait_for_selector("#record-button.recording", timeout=5_000)
    page.wait_for_timeout(1500)
    page.click("#record-button")
    expect(page.locator("#status")).to_have_text("Done: recording.wav", timeout=20_000)
    bars = read_bars(page)
    assert list(bars) == recognizer.labels and sum(bars.values()) == pytest.approx(100, abs=0.25)
    seconds = float(re.search(r"([\d.]+) s of audio", page.text_content("#summary")).group(1))
    assert 1.0 <= seconds <= 4.0
    screenshot(page, tmp_path, "serve_page_recording.png")


def test_a_refused_upload_shows_the_servers_message(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n" * 40)
    page.set_input_files("#file-input", str(notes))
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    message = page.text_content("#error")
    assert "'notes.txt': cannot decode audio" in message and "HTTP 415" in message
    screenshot(page, tmp_path, "serve_page_error.png")


def test_the_openapi_page_renders_offline(page, server_url, tmp_path):
    page.goto(f"{server_url}/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=15_000)
    paths = page.eval_on_selector_all(".opblock-summary-path", "e => e.map(p => p.textContent)")
    assert {"/predict", "/health", "/labels"} <= {path.strip() for path in paths}
    screenshot(page, tmp_path, "serve_docs.png")


def test_speech_segments_are_drawn_by_label_with_silence_between(page, recognizer, tmp_path):
    """?segments=vad from the page: a band piece per speech segment coloured by its label, hatched silence
    between them, a flat probability line per segment; switching back to windows redraws as before."""
    pytest.importorskip("silero_vad", reason="the vad extra (pip install 'serkit[vad]') is not installed")
    from serkit_synth.montage import synthetic_talk

    samples, spans = synthetic_talk([(1.0, 2.0), (1.5, 3.0), (1.0, 1.5)])
    wav = tmp_path / "talk.wav"
    sf.write(wav, samples, 16000)
    expected = recognizer.predict(wav, segments="vad")
    page.select_option("#segments-select", "vad")
    upload(page, wav)
    assert page.is_visible("#timeline")
    drawn = page.eval_on_selector_all(
        "#timeline-strip .segment.speech",
        "s => s.map(e => [e.dataset.label, +e.dataset.start, +e.dataset.end, getComputedStyle(e).backgroundColor])")
    assert [(label, start, end) for label, start, end, _ in drawn] == \
        [(s.label, s.start, s.end) for s in expected.segments]
    colours = {label: colour for label, _, _, colour in drawn}
    assert len(set(colours.values())) == len(colours)  # one colour per label
    silences = page.eval_on_selector_all("#timeline-strip .silence", "s => s.map(e => [+e.dataset.start, +e.dataset.end])")
    assert len(silences) == len(expected.segments) + 1  # before, between and after the speech
    assert silences[0][0] == 0 and silences[-1][1] == pytest.approx(expected.duration)
    series = page.eval_on_selector_all("#timeline-chart path.series", "s => s.map(e => e.dataset.label)")
    assert series == recognizer.labels
    assert page.get_attribute("#timeline-chart path.series", "d").count("M") == len(expected.segments)
    assert "silence" in page.text_content("#legend")
    summary = page.text_content("#summary")
    assert f"most likely {expected.label}" in summary and f"{len(expected.segments)} speech segments" in summary
    screenshot(page, tmp_path, "serve_page_segments.png")
    page.select_option("#segments-select", "windows")  # predicts the same upload again
    expect(page.locator("#timeline-strip .silence")).to_have_count(0, timeout=20_000)
    assert page.eval_on_selector_all(".segment", "s => s.length") == len(recognizer.predict(wav).windows)
