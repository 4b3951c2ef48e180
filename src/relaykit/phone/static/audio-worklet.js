// The phone's audio threads: the microphone cut into 20 ms frames of 16 kHz int16, and a
// player for the IVR's frames with a small bounded jitter buffer.

const RATE = 16000;
const FRAME = 320; // samples in 20 ms

// Microphone → 20 ms int16 frames (posted as ArrayBuffers). Resamples linearly when the
// context does not run at 16 kHz.
class Microphone extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE; // input samples per output sample
    this.pos = 0; // where the next output sample falls, in input samples
    this.prev = 0; // the last input sample of the previous block
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (;;) {
      const i = Math.floor(this.pos);
      if (i >= input.length) break;
      const a = i === 0 ? this.prev : input[i - 1];
      const b = input[i];
      const t = this.pos - i;
      // pos counts from one sample before the block (prev), so the mix is a..b
      const v = a + (b - a) * t;
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
