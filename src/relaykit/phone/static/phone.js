// relaykit phone: call the server's IVRs from the browser. No build step, no dependencies.
// The wire format is described in relaykit/phone/endpoint.py.

const STORAGE = "relaykit.phone"; // sessionStorage: {project, token}; never in a URL
const RATE = 16000;
const KEYS = [
  ["1", ""], ["2", "ABC"], ["3", "DEF"], ["4", "GHI"], ["5", "JKL"], ["6", "MNO"],
  ["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"], ["*", ""], ["0", "+"], ["#", ""],
];
const DTMF = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], A: [697, 1633],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477], B: [770, 1633],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477], C: [852, 1633],
  "*": [941, 1209], 0: [941, 1336], "#": [941, 1477], D: [941, 1633],
};
const GOOD_RESULTS = new Set(["digit", "speech"]);
const CAPTURE_SECONDS = 60; // what the page played, kept for playedAudio()
const FFT_SIZE = 4096;

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  credentials: null,
  ready: false,
  calls: new Map(), // call_id → summary
  mine: null, // the call this page placed
  dialing: false,
  watched: null,
  audio: null,
};

// -- audio ------------------------------------------------------------------------------------
class PhoneAudio {
  static async open(onPlayed) {
    const ctx = new AudioContext({ sampleRate: RATE });
    const audio = new PhoneAudio(ctx, onPlayed);
    if (ctx.audioWorklet) {
      await ctx.audioWorklet.addModule("/phone/audio-worklet.js");
      audio.player = new AudioWorkletNode(ctx, "relaykit-player", {
        numberOfInputs: 0,
        outputChannelCount: [1],
      });
      audio.player.port.onmessage = (event) => onPlayed(event.data);
      audio.player.connect(ctx.destination);
    }
    await ctx.resume();
    return audio;
  }

  constructor(ctx, onPlayed) {
    this.ctx = ctx;
    this.onPlayed = onPlayed;
    this.player = null; // the worklet player, or null: buffers scheduled one by one
    this.next = 0;
    this.stream = null;
    this.source = null;
    this.mic = null;
    this.micCtx = null; // only where the 16 kHz context takes no microphone
  }

  // One 20 ms frame of the IVR's audio (an ArrayBuffer of int16).
  play(buffer) {
    if (this.player) {
      this.player.port.postMessage(buffer, [buffer]);
      return;
    }
    // No AudioWorklet (not a secure origin): schedule the frames back to back.
    const pcm = new Int16Array(buffer);
    const samples = Float32Array.from(pcm, (v) => v / 32768);
    const now = this.ctx.currentTime;
    if (this.next < now + 0.02) this.next = now + 0.06;
    if (this.next > now + 0.5) return; // too far behind: drop
    const source = this.ctx.createBufferSource();
    source.buffer = this.ctx.createBuffer(1, samples.length, RATE);
    source.buffer.copyToChannel(samples, 0);
    source.connect(this.ctx.destination);
    source.start(this.next);
    this.next += samples.length / RATE;
    this.onPlayed(samples);
  }

  async startMicrophone(onFrame) {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    let ctx = this.ctx;
    let source;
    try {
      source = ctx.createMediaStreamSource(this.stream);
    } catch {
      // Some browsers feed a microphone only into a context at its own rate: the worklet
      // resamples to 16 kHz there.
      if (!this.micCtx) {
        this.micCtx = new AudioContext();
        await this.micCtx.audioWorklet.addModule("/phone/audio-worklet.js");
      }
      ctx = this.micCtx;
      await ctx.resume();
      source = ctx.createMediaStreamSource(this.stream);
    }
    this.mic = new AudioWorkletNode(ctx, "relaykit-microphone");
    this.mic.port.onmessage = (event) => onFrame(event.data);
    const mute = ctx.createGain();
    mute.gain.value = 0; // the node must reach the destination to run; nothing is heard
    source.connect(this.mic).connect(mute).connect(ctx.destination);
    this.source = source;
  }

  stopMicrophone() {
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.source) this.source.disconnect();
    if (this.mic) this.mic.disconnect();
    this.stream = null;
    this.source = null;
    this.mic = null;
  }

  // A short local beep of the key's two tones, so the press is heard here too.
  sidetone(key) {
    const pair = DTMF[key];
    if (!pair) return;
    const gain = this.ctx.createGain();
    gain.gain.value = 0.05;
    gain.connect(this.ctx.destination);
    const end = this.ctx.currentTime + 0.1;
    for (const frequency of pair) {
      const osc = this.ctx.createOscillator();
      osc.frequency.value = frequency;
      osc.connect(gain);
      osc.start();
      osc.stop(end);
    }
  }
}

// -- what the page played: level, frequency, and the last minute of samples ----------------------
const played = {
  chunks: [],
  total: 0,
  recent: new Float32Array(FFT_SIZE),

  reset() {
    this.chunks = [];
    this.total = 0;
  },

  add(samples) {
    this.chunks.push(samples);
    this.total += samples.length;
    while (this.total - this.chunks[0].length >= CAPTURE_SECONDS * RATE) {
      this.total -= this.chunks.shift().length;
    }
    this.recent.copyWithin(0, Math.min(samples.length, FFT_SIZE));
    this.recent.set(samples.subarray(Math.max(0, samples.length - FFT_SIZE)), FFT_SIZE - Math.min(samples.length, FFT_SIZE));
    let energy = 0;
    for (const v of samples) energy += v * v;
    const level = 10 * Math.log10(energy / samples.length + 1e-12);
    showLevel(level, level > -50 ? dominantFrequency(this.recent) : null);
  },

  // Int16 little-endian samples, base64: for tests and checks of what was heard.
  base64() {
    const pcm = new Int16Array(this.total);
    let at = 0;
    for (const chunk of this.chunks) {
      for (let i = 0; i < chunk.length; i++) pcm[at++] = Math.max(-32768, Math.min(32767, Math.round(chunk[i] * 32768)));
    }
    let text = "";
    const bytes = new Uint8Array(pcm.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  },
};

function dominantFrequency(samples) {
  const n = samples.length;
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < n; i++) re[i] = samples[i] * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  fft(re, im);
  let best = 1;
  let bestPower = 0;
  const power = (k) => re[k] * re[k] + im[k] * im[k];
  for (let k = 1; k < n / 2; k++) {
    const p = power(k);
    if (p > bestPower) {
      bestPower = p;
      best = k;
    }
  }
  // parabolic interpolation between the neighbouring bins (log power)
  const a = Math.log(power(best - 1) + 1e-20);
  const b = Math.log(bestPower + 1e-20);
  const c = Math.log(power(best + 1) + 1e-20);
  const shift = a - 2 * b + c === 0 ? 0 : (0.5 * (a - c)) / (a - 2 * b + c);
  return ((best + shift) * RATE) / n;
}

function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const angle = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < size / 2; k++) {
        const wr = Math.cos(angle * k);
        const wi = Math.sin(angle * k);
        const i = start + k;
        const j = i + size / 2;
        const tr = re[j] * wr - im[j] * wi;
        const ti = re[j] * wi + im[j] * wr;
        re[j] = re[i] - tr;
        im[j] = im[i] - ti;
        re[i] += tr;
        im[i] += ti;
      }
    }
  }
}

function showLevel(level, frequency) {
  const meter = $("meter");
  meter.dataset.levelDbfs = level.toFixed(1);
  meter.dataset.frequencyHz = frequency === null ? "" : frequency.toFixed(0);
  $("meter-bar").style.width = `${Math.max(0, Math.min(100, ((level + 60) / 60) * 100))}%`;
  meter.textContent =
    level > -50 ? `IVR audio: ${level.toFixed(1)} dBFS · ${frequency.toFixed(0)} Hz` : "IVR audio: silent";
}

window.relaykitPhone = { playedAudio: () => played.base64() };

// -- the socket -------------------------------------------------------------------------------------
function connect(credentials) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/phone/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  state.credentials = credentials;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", ...credentials }));
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else if (state.audio) state.audio.play(event.data);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    lineOver();
    if (state.ready) {
      state.ready = false;
      showNotice("The connection to the server was lost. Reload the page to reconnect.");
    } else if (!$("login-error").textContent) {
      $("login-error").textContent = "The server did not accept the connection.";
    }
  };
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function onMessage(message) {
  switch (message.type) {
    case "ready":
      state.ready = true;
      $("login").hidden = true;
      $("main").hidden = false;
      $("who").hidden = false;
      $("project-name").textContent = message.project;
      state.calls = new Map(message.calls.map((c) => [c.call_id, c]));
      renderCalls();
      break;
    case "call":
      state.calls.set(message.call.call_id, message.call);
      renderCalls();
      if (message.call.call_id === state.mine) showLine(message.call);
      if (message.call.call_id === state.watched) showDownloads(message.call);
      break;
    case "placed":
      state.dialing = false;
      state.mine = message.call_id;
      renderCalls();
      break;
    case "timeline":
      state.watched = message.call.call_id;
      $("events").replaceChildren();
      $("timeline-title").textContent =
        `${message.call.context}: ${message.call.from} → ${message.call.to} (${message.call.call_id.slice(0, 8)})`;
      message.events.forEach(addEvent);
      showDownloads(message.call);
      renderCalls();
      break;
    case "event":
      if (message.call_id === state.watched) addEvent(message.event);
      break;
    case "error":
      if (message.kind === "auth") {
        sessionStorage.removeItem(STORAGE);
        $("login-error").textContent = message.message;
      } else {
        $("phone-error").textContent = message.message;
        if (state.dialing && message.kind === "no_ivr") {
          state.dialing = false;
          lineOver();
          $("line-state").textContent = "no answer";
        }
      }
      break;
  }
}

// -- the phone --------------------------------------------------------------------------------------
function myCall() {
  return state.mine ? state.calls.get(state.mine) : null;
}

function inCall() {
  const call = myCall();
  return state.dialing || (call && call.state !== "ended" && call.state !== "ending");
}

async function dial() {
  if (inCall()) return;
  $("phone-error").textContent = "";
  $("pressed").textContent = "";
  try {
    if (!state.audio) state.audio = await PhoneAudio.open((samples) => played.add(samples));
    await state.audio.ctx.resume();
  } catch (error) {
    $("phone-error").textContent = `Audio unavailable: ${error.message}`;
    return;
  }
  played.reset();
  state.mine = null;
  state.dialing = true;
  $("line-state").textContent = `dialling ${$("context").value}…`;
  $("call").disabled = true;
  $("hangup").disabled = false;
  await startMicrophone();
  send({ type: "dial", context: $("context").value, from: $("from").value, to: $("to").value });
}

async function startMicrophone() {
  const why = insecureReason();
  if (why) {
    $("mic-status").textContent = "Microphone: unavailable (not a secure origin; see above)";
    return;
  }
  try {
    await state.audio.startMicrophone((frame) => {
      const call = myCall();
      if (call && call.state === "answered" && state.ws) state.ws.send(frame);
    });
    $("mic-status").textContent = "Microphone: on";
  } catch (error) {
    $("mic-status").textContent =
      error.name === "NotAllowedError"
        ? "Microphone: blocked. Allow it for this site in the browser's settings, then call again."
        : `Microphone: unavailable (${error.message})`;
  }
}

function hangUp() {
  send({ type: "hangup" });
  if (state.dialing) {
    state.dialing = false;
    lineOver();
    $("line-state").textContent = "idle";
  }
}

function lineOver() {
  if (state.audio) state.audio.stopMicrophone();
  $("mic-status").textContent = "Microphone: off";
  $("call").disabled = false;
  $("hangup").disabled = true;
}

function showLine(call) {
  if (call.state === "ended" || call.state === "ending") {
    lineOver();
    $("line-state").textContent = `ended (${call.end_reason || "hangup"})`;
  } else {
    $("line-state").textContent = `${call.state}: ${call.context}`;
  }
}

function press(key) {
  const call = myCall();
  if (call && call.state === "answered") {
    send({ type: "key", key });
    if (state.audio) state.audio.sidetone(key);
    $("pressed").textContent += key;
  } else if (!inCall()) {
    $("to").value += key; // before a call the dialpad types the number called
  }
}

// -- the call list and the timeline ------------------------------------------------------------------
function renderCalls() {
  const rows = [...state.calls.values()].sort((a, b) => b.started - a.started);
  $("no-calls").hidden = rows.length > 0;
  $("call-list").replaceChildren(
    ...rows.map((call) => {
      const tr = document.createElement("tr");
      tr.dataset.callId = call.call_id;
      if (call.call_id === state.watched) tr.classList.add("watched");
      const started = new Date(call.started * 1000).toLocaleTimeString();
      const who = `${call.from} → ${call.to}`;
      const mine = call.call_id === state.mine ? " (this phone)" : call.via ? ` (${call.via})` : "";
      const stateText = call.end_reason ? `${call.state} (${call.end_reason})` : call.state;
      for (const [text, cls] of [[started], [call.context], [who + mine, mine ? "mine" : ""], [stateText, `state-${call.state}`]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      tr.addEventListener("click", () => send({ type: "watch", call_id: call.call_id }));
      return tr;
    }),
  );
}

function addEvent(event) {
  if (!event.text) return;
  const li = document.createElement("li");
  li.dataset.kind = event.kind;
  if (event.kind === "prompt.ended") li.className = GOOD_RESULTS.has(event.result_type) ? "result-good" : "result-bad";
  for (const [text, cls] of [[`${event.at.toFixed(2)}s`, "at"], [event.actor, `actor actor-${event.actor}`], [event.text, "text"]]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  li.dataset.at = event.at;
  const list = $("events");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  // in call-time order: a key's press is logged when it is queued, before earlier detections
  let before = null;
  for (let row = list.lastElementChild; row && Number(row.dataset.at) > event.at; row = row.previousElementSibling) {
    before = row;
  }
  list.insertBefore(li, before);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function showDownloads(call) {
  const ended = call.state === "ended";
  $("downloads").hidden = !ended;
  if (!ended || call.call_id !== state.watched) $("timeline-picture").hidden = true;
}

async function download(name) {
  const id = state.watched;
  const { project, token } = state.credentials;
  const bytes = new TextEncoder().encode(`${project}:${token}`);
  const response = await fetch(`/phone/calls/${id}/${name}`, {
    headers: { Authorization: `Bearer ${btoa(String.fromCharCode(...bytes))}` },
  });
  if (!response.ok) {
    $("phone-error").textContent = `${name}: ${await response.text()}`;
    return null;
  }
  return URL.createObjectURL(await response.blob());
}

async function downloadWav(event) {
  event.preventDefault();
  const id = state.watched;
  const url = await download("recording.wav");
  if (!url) return;
  const a = document.createElement("a");
  a.href = url;
  a.download = `call-${id.slice(0, 8)}.wav`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function showTimeline(event) {
  event.preventDefault();
  const url = await download("timeline.png");
  if (!url) return;
  const img = $("timeline-picture");
  img.src = url;
  img.hidden = false;
}

// -- set-up -------------------------------------------------------------------------------------------
function insecureReason() {
  if (window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) return null;
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  return (
    `The microphone is unavailable here: ${location.origin} is not a secure origin, and browsers ` +
    "give the microphone only to https:// pages and to http://localhost. Open " +
    `http://localhost:${port}/phone on the machine that runs the server, or forward the port ` +
    `to this machine (ssh -L ${port}:127.0.0.1:${port} you@server) and open that address. ` +
    "Calls, keys and the IVR's audio work without it."
  );
}

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = false;
}

function setUp() {
  const why = insecureReason();
  if (why) showNotice(why);
  for (const [key, letters] of KEYS) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = key;
    button.setAttribute("aria-label", `key ${key}`);
    button.textContent = key;
    const small = document.createElement("small");
    small.textContent = letters || "\u00a0";
    button.append(small);
    button.addEventListener("click", () => press(key));
    $("dialpad").append(button);
  }
  $("call").addEventListener("click", dial);
  $("hangup").addEventListener("click", hangUp);
  $("download-wav").addEventListener("click", downloadWav);
  $("download-png").addEventListener("click", showTimeline);
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    const key = event.key.toUpperCase();
    if (DTMF[key]) press(key);
  });
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const credentials = { project: $("login-project").value.trim(), token: $("login-token").value };
    sessionStorage.setItem(STORAGE, JSON.stringify(credentials));
    $("login-error").textContent = "";
    connect(credentials);
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE);
    if (state.ws) state.ws.close();
    location.reload();
  });
  const saved = sessionStorage.getItem(STORAGE);
  if (saved) connect(JSON.parse(saved));
}

setUp();
