// The phone's audio threads: the microphone cut into 20 ms frames of 16 kHz int16, and a
// player for the IVR's frames with a small bounded jitter buffer.

const RATE = 16000;
const FRAME = 320; // samples in 20 ms

// Microphone → 20 ms int16 frames (posted as ArrayBuffers). A context at another rate (a
// browser that will not feed a microphone into a 16 kHz context) is low-pass filtered below
// 7 kHz, then resampled linearly.
class Microphone extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE; // input samples per output sample
    this.pos = 0; // where the next output sample falls, in input samples
    this.prev = 0; // the last input sample of the previous block
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
    this.taps = sampleRate > RATE ? lowPass(7000 / sampleRate, 63) : null;
    this.history = this.taps ? new Float32Array(this.taps.length - 1) : null;
  }

  process(inputs) {
    const raw = inputs[0] && inputs[0][0];
    if (!raw) return true;
    const input = this.taps ? this.filter(raw) : raw;
    for (;;) {
      const i = Math.floor(this.pos);
      if (i >= input.length) break;
      // pos counts from one sample before the block (prev), so the mix is a..b
      const a = i === 0 ? this.prev : input[i - 1];
      const b = input[i];
      const v = a + (b - a) * (this.pos - i);
      this.frame[this.fill++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
      if (this.fill === FRAME) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME);
        this.fill = 0;
      }
      this.pos += this.step;
    }
    this.pos -= input.length;
    this.prev = input[input.length - 1];
    return true;
  }

  filter(input) {
    const taps = this.taps;
    const n = taps.length;
    const x = new Float32Array(n - 1 + input.length);
    x.set(this.history);
    x.set(input, n - 1);
    const y = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += taps[k] * x[i + n - 1 - k];
      y[i] = sum;
    }
    this.history = x.slice(input.length);
    return y;
  }
}

// A windowed-sinc low-pass FIR: ``cutoff`` in cycles per sample, unity gain at 0 Hz.
function lowPass(cutoff, n) {
  const taps = new Float32Array(n);
  const middle = (n - 1) / 2;
  let total = 0;
  for (let k = 0; k < n; k++) {
    const t = k - middle;
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
    taps[k] = sinc * (0.5 - 0.5 * Math.cos((2 * Math.PI * k) / (n - 1)));
    total += taps[k];
  }
  for (let k = 0; k < n; k++) taps[k] /= total;
  return taps;
}

// The IVR's frames → the speakers. Starts once PRIME samples wait (or the first frame has
// waited as long); after running dry it plays silence and primes again. At most MAX samples
// wait: older ones are dropped, so the delay stays bounded. Every ~100 ms it posts what it
// played (Float32Array), for the page's level meter.
const PRIME = 3 * FRAME;
const MAX = 25 * FRAME;
const REPORT = 1600;

class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.queued = 0;
    this.offset = 0; // read position in queue[0]
    this.playing = false;
    this.waited = 0; // samples output while priming with something queued
    this.dropped = 0;
    this.report = new Float32Array(REPORT);
    this.reported = 0;
    this.port.onmessage = (event) => this.push(new Int16Array(event.data));
  }

  push(frame) {
    this.queue.push(frame);
    this.queued += frame.length;
    while (this.queued - this.offset > MAX && this.queue.length > 1) {
      const old = this.queue.shift();
      this.queued -= old.length;
      this.dropped += old.length - this.offset;
      this.offset = 0;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    for (let n = 0; n < out.length; n++) {
      const waiting = this.queued - this.offset;
      if (!this.playing && waiting > 0) {
        this.waited++;
        if (waiting >= PRIME || this.waited >= PRIME) this.playing = true;
      }
      let v = 0;
      if (this.playing) {
        if (waiting > 0) {
          const head = this.queue[0];
          v = head[this.offset++] / 32768;
          if (this.offset === head.length) {
            this.queue.shift();
            this.queued -= head.length;
            this.offset = 0;
          }
        } else {
          this.playing = false; // ran dry: silence, then prime again
          this.waited = 0;
        }
      }
      out[n] = v;
      this.report[this.reported++] = v;
      if (this.reported === REPORT) {
        this.port.postMessage(this.report, [this.report.buffer]);
        this.report = new Float32Array(REPORT);
        this.reported = 0;
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("relaykit-microphone", Microphone);
registerProcessor("relaykit-player", Player);
