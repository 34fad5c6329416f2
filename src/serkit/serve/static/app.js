// serkit's web page: upload a file or a recording to POST /predict, draw the answer.
// Plain JS, no build step, no outside resources. Text from the server is inserted with textContent only.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
// Okabe-Ito colours (distinguishable with colour-blindness); the usual SER classes get fixed ones.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#000000"];
const KNOWN_COLOURS = { neu: "#6B7280", hap: "#E69F00", ang: "#D55E00", sad: "#0072B2",
                        exc: "#CC79A7", fru: "#009E73", sur: "#56B4E9", fea: "#8C6D1F", dis: "#000000" };
const RECORD_SAMPLE_RATE = 16000;  // what the models eat; also keeps recordings small

const state = { labels: [], colours: {}, limits: null, lastUpload: null, recorder: null };
const $ = (id) => document.getElementById(id);

document.addEventListener("DOMContentLoaded", () => {
  $("file-input").addEventListener("change", onFileChosen);
  $("segments-select").addEventListener("change", () => {
    if (state.lastUpload) predict(state.lastUpload.blob, state.lastUpload.name);
  });
  $("record-button").addEventListener("click", onRecordClicked);
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.lastUpload) predict(state.lastUpload.blob, state.lastUpload.name);
  });
  loadServerInfo();
});

async function loadServerInfo() {
  try {
    const [labels, health] = await Promise.all([getJson("/labels"), getJson("/health")]);
    setLabels(labels.labels);
    state.limits = health.limits;
    $("limits").textContent = `Up to ${formatNumber(health.limits.max_upload_mb)} MB and ` +
                              `${formatNumber(health.limits.max_seconds)} s of audio.`;
    $("model-labels").textContent = `Model classes: ${labels.labels.join(", ")}`;
    if (labels.needs_text) {
      $("text-input").required = true;
      $("text-hint").textContent = "(required: this model reads the transcript too)";
    }
  } catch (error) {
    showError(`Cannot reach the server: ${error.message}`);
  }
}

function setLabels(labels) {
  state.labels = labels;
  let next = 0;
  for (const label of labels) {
    state.colours[label] = KNOWN_COLOURS[label] || PALETTE[next++ % PALETTE.length];
  }
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

function onFileChosen() {
  const file = $("file-input").files[0];
  if (file) predict(file, file.name);
}

// ---- prediction ------------------------------------------------------------------------------------

async function predict(blob, name) {
  state.lastUpload = { blob, name };
  $("predict-button").disabled = false;
  showPlayer(blob);
  hideError();
  if (state.limits && blob.size > state.limits.max_upload_bytes) {
    showError(`${name} is ${formatNumber(blob.size / 1048576)} MB; this server accepts at most ` +
              `${formatNumber(state.limits.max_upload_mb)} MB.`);
    return;
  }
  const form = new FormData();
  form.append("file", blob, name);
  const text = $("text-input").value.trim();
  if (text) form.append("text", text);
  setStatus(`Analysing ${name}…`);
  $("result").hidden = true;  // never leave an earlier answer beside a new file
  document.body.setAttribute("aria-busy", "true");
  try {
    const segments = $("segments-select").value;
    const url = segments === "windows" ? "/predict" : `/predict?segments=${encodeURIComponent(segments)}`;
    const response = await fetch(url, { method: "POST", body: form });
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      throw new Error(`${detail} (HTTP ${response.status})`);
    }
    showResult(body, name);
    setStatus(`Done: ${name}`);
  } catch (error) {
    setStatus("");
    showError(error.message);
  } finally {
    document.body.removeAttribute("aria-busy");
  }
}

function showResult(prediction, name) {
  const labels = state.labels.length ? state.labels : Object.keys(prediction.probabilities);
  if (!state.labels.length) setLabels(labels);
  const top = prediction.probabilities[prediction.label] || 0;
  if (prediction.segments) {
    const count = prediction.segments.length;
    $("summary").textContent = prediction.label === null
      ? `${name}: no speech found in ${prediction.duration.toFixed(1)} s of audio.`
      : `${name}: most likely ${prediction.label} (${percent(top)}) over ` +
        `${prediction.speech_seconds.toFixed(1)} s of speech in ${prediction.duration.toFixed(1)} s of audio, ` +
        `${count} speech segment${count === 1 ? "" : "s"}.`;
  } else {
    $("summary").textContent = `${name}: most likely ${prediction.label} (${percent(top)}), ` +
                               `${prediction.duration.toFixed(1)} s of audio` +
                               (prediction.windows.length ? `, ${prediction.windows.length} windows.` : ".");
  }
  drawBars(labels, prediction);
  if (prediction.segments) drawSegmentTimeline(labels, prediction);
  else drawTimeline(labels, prediction);
  $("result").hidden = false;
}

function drawBars(labels, prediction) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const label of labels) {
    const value = prediction.probabilities[label] || 0;
    const bar = element("div", { class: "bar" + (label === prediction.label ? " top" : ""),
                                 "data-label": label, "data-probability": String(value), role: "meter",
                                 "aria-valuemin": "0", "aria-valuemax": "100",
                                 "aria-valuenow": (value * 100).toFixed(1), "aria-label": label });
    const fill = element("span", { class: "bar-fill" });
    fill.style.width = `${(value * 100).toFixed(2)}%`;
    fill.style.backgroundColor = state.colours[label];
    bar.append(element("span", { class: "bar-name" }, label),
               element("span", { class: "bar-track" }, fill),
               element("span", { class: "bar-value" }, percent(value)));
    bars.append(bar);
  }
}

// ---- timeline (audio longer than one window) ---------------------------------------------------------

function drawTimeline(labels, prediction) {
  const windows = prediction.windows || [];
  $("timeline").hidden = windows.length === 0;
  if (!windows.length) return;
  $("timeline-hint").textContent = "Band: the most likely emotion of each window. Lines: each emotion's " +
                                   "probability, plotted at the middle of each window.";
  const end = Math.max(prediction.duration, ...windows.map((w) => w.end));
  drawStrip(windows, end);
  drawChart(labels, windows, end);
  drawLegend(labels, false);
}

function drawLegend(labels, withSilence) {
  const legend = $("legend");
  legend.replaceChildren();
  for (const label of labels) {
    const swatch = element("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = state.colours[label];
    legend.append(element("li", {}, swatch, label));
  }
  if (withSilence) legend.append(element("li", {}, element("span", { class: "swatch silence", "aria-hidden": "true" }),
                                         "silence"));
}

// ---- timeline of speech segments (?segments=vad): speech coloured by emotion, silence between ------------

function drawSegmentTimeline(labels, prediction) {
  const segments = prediction.segments;
  $("timeline").hidden = false;
  $("timeline-hint").textContent = "Band: the most likely emotion of each speech segment; hatched grey: " +
                                   "silence. Lines: each emotion's probability over each segment.";
  const end = Math.max(prediction.duration, ...segments.map((s) => s.end), 1e-6);
  const strip = $("timeline-strip");
  strip.replaceChildren();
  for (const [start, stop] of silences(segments, end)) {
    const gap = element("span", { class: "silence", "data-start": String(start), "data-end": String(stop),
                                  title: `${start.toFixed(1)}–${stop.toFixed(1)} s: silence` });
    gap.style.left = `${(start / end) * 100}%`;
    gap.style.width = `${((stop - start) / end) * 100}%`;
    strip.append(gap);
  }
  for (const s of segments) {
    const who = s.speaker ? `${s.speaker}, ` : "";
    const segment = element("span", { class: "segment speech", "data-label": s.label, "data-start": String(s.start),
                                      "data-end": String(s.end),
                                      title: `${s.start.toFixed(2)}–${s.end.toFixed(2)} s: ${who}${s.label} ` +
                                             `(${percent(s.probabilities[s.label] || 0)})` });
    segment.style.left = `${(s.start / end) * 100}%`;
    segment.style.width = `${((s.end - s.start) / end) * 100}%`;
    segment.style.backgroundColor = state.colours[s.label];
    strip.append(segment);
  }
  drawSegmentChart(labels, segments, end);
  drawLegend(labels, true);
}

// The stretches of [0, end] that no segment covers (segments may overlap: a diarisation's two speakers).
function silences(segments, end) {
  const gaps = [];
  let covered = 0;
  for (const s of [...segments].sort((a, b) => a.start - b.start)) {
    if (s.start > covered) gaps.push([covered, s.start]);
    covered = Math.max(covered, s.end);
  }
  if (covered < end) gaps.push([covered, end]);
  return gaps;
}

// Each emotion's probability as a flat line over each segment; nothing is drawn over silence.
function drawSegmentChart(labels, segments, end) {
  const { svg, x, y } = chartAxes(end);
  for (const [start, stop] of silences(segments, end)) {
    svg.append(svgElement("rect", { class: "silence-band", x: x(start), y: y(1), width: Math.max(0, x(stop) - x(start)),
                                    height: y(0) - y(1) }));
  }
  for (const label of labels) {
    const path = segments.map((s) => `M${x(s.start).toFixed(1)},${y(s.probabilities[label] || 0).toFixed(1)}` +
                                     `H${x(s.end).toFixed(1)}`).join(" ");
    const series = svgElement("path", { class: "series", "data-label": label, d: path || "M0,0",
                                        stroke: state.colours[label] });
    series.append(svgElement("title", {}, `${label}: probability per speech segment`));
    svg.append(series);
  }
}

// Windows overlap (hop < window): each is shown from its start until the next one starts.
function drawStrip(windows, end) {
  const strip = $("timeline-strip");
  strip.replaceChildren();
  windows.forEach((w, i) => {
    const until = i + 1 < windows.length ? windows[i + 1].start : w.end;
    const segment = element("span", { class: "segment", "data-label": w.label, "data-start": String(w.start),
                                      title: `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${w.label} ` +
                                             `(${percent(w.probabilities[w.label] || 0)})` });
    segment.style.left = `${(w.start / end) * 100}%`;
    segment.style.width = `${((until - w.start) / end) * 100}%`;
    segment.style.backgroundColor = state.colours[w.label];
    strip.append(segment);
  });
}

// An empty chart with its grid and time axis over [0, end] -> the svg and its x (seconds), y (probability) scales.
function chartAxes(end) {
  const svg = $("timeline-chart");
  const [width, height, left, right, top, bottom] = [640, 180, 44, 12, 10, 28];
  const x = (t) => left + (t / end) * (width - left - right);
  const y = (p) => top + (1 - p) * (height - top - bottom);
  for (const old of svg.querySelectorAll(":scope > :not(title)")) old.remove();
  for (const p of [0, 0.5, 1]) {
    svg.append(svgElement("line", { class: "grid", x1: left, x2: width - right, y1: y(p), y2: y(p) }),
               svgElement("text", { class: "axis", x: left - 6, y: y(p) + 4, "text-anchor": "end" }, percent(p, 0)));
  }
  for (const t of timeTicks(end)) {
    svg.append(svgElement("text", { class: "axis", x: x(t), y: height - 8, "text-anchor": "middle" }, `${t} s`));
  }
  return { svg, x, y };
}

function drawChart(labels, windows, end) {
  const { svg, x, y } = chartAxes(end);
  for (const label of labels) {
    const points = windows.map((w) => `${x((w.start + w.end) / 2).toFixed(1)},` +
                                      `${y(w.probabilities[label] || 0).toFixed(1)}`);
    svg.append(svgElement("polyline", { class: "series", "data-label": label, points: points.join(" "),
                                        stroke: state.colours[label] }));
    for (const w of windows) {
      const p = w.probabilities[label] || 0;
      const dot = svgElement("circle", { class: "point", cx: x((w.start + w.end) / 2), cy: y(p), r: 3,
                                         fill: state.colours[label] });
      dot.append(svgElement("title", {}, `${label} ${percent(p)} in ${w.start.toFixed(1)}–${w.end.toFixed(1)} s`));
      svg.append(dot);
    }
  }
}

function timeTicks(end) {
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => end / s <= 8) || Math.ceil(end / 8);
  const ticks = [];
  for (let t = 0; t <= end + 1e-9; t += step) ticks.push(t);
  return ticks;
}

// ---- recording ---------------------------------------------------------------------------------------

async function onRecordClicked() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("Recording needs a browser with MediaRecorder, on https or localhost.");
    return;
  }
  hideError();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`No microphone: ${error.message}`);
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  const started = Date.now();
  const timer = setInterval(() => {
    $("record-time").textContent = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  }, 200);
  recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
  recorder.addEventListener("stop", async () => {
    clearInterval(timer);
    $("record-time").textContent = `recorded ${((Date.now() - started) / 1000).toFixed(1)} s`;
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    setRecordButton(false);
    try {
      setStatus("Converting the recording to WAV…");
      const wav = await recordingToWav(new Blob(chunks, { type: recorder.mimeType }));
      predict(wav, "recording.wav");
    } catch (error) {
      showError(`Cannot convert the recording: ${error.message}`);
    }
  });
  state.recorder = recorder;
  recorder.start();
  setRecordButton(true);
  setStatus("Recording… press Stop when done.");
}

function setRecordButton(recording) {
  const button = $("record-button");
  button.textContent = recording ? "Stop recording" : "Record from microphone";
  button.setAttribute("aria-pressed", String(recording));
  button.classList.toggle("recording", recording);
}

// The server decodes with libsndfile, which cannot read MediaRecorder's webm/opus: the browser decodes
// the recording itself (resampled to 16 kHz by the offline context) and sends 16-bit PCM WAV.
async function recordingToWav(blob) {
  const context = new OfflineAudioContext(1, 1, RECORD_SAMPLE_RATE);
  const buffer = await context.decodeAudioData(await blob.arrayBuffer());
  return encodeWav(mixToMono(buffer), buffer.sampleRate);
}

function mixToMono(buffer) {
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const channel = buffer.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / buffer.numberOfChannels;
  }
  return mono;
}

function encodeWav(samples, sampleRate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);  // PCM
  view.setUint16(22, 1, true); view.setUint32(24, sampleRate, true);            // mono, rate
  view.setUint32(28, sampleRate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => {
    const clipped = Math.max(-1, Math.min(1, s));
    view.setInt16(44 + i * 2, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
  });
  return new Blob([view], { type: "audio/wav" });
}

// ---- small helpers -----------------------------------------------------------------------------------

function showPlayer(blob) {
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  player.hidden = false;
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function svgElement(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;
const formatNumber = (n) => Number(n.toPrecision(3)).toString();
const setStatus = (message) => { $("status").textContent = message; };
function showError(message) { $("error").textContent = message; $("error").hidden = false; }
function hideError() { $("error").hidden = true; $("error").textContent = ""; }
