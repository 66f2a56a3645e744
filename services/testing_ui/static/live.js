// Live mode of the testing UI: microphone → 24 kHz PCM16 → OpenAI Realtime events over the
// UI's relay (WS /live/realtime, which holds the orchestrator key) → reply audio played as it
// arrives, cut at once when the user speaks over it (barge-in). No build step, no libraries.
(() => {
  "use strict";
  const RATE = 24000; // the Realtime API's PCM rate, both directions
  const CHUNK = 960; // 40 ms at 24 kHz per input_audio_buffer.append (as voice_client --live)
  const LEAD_S = 0.03; // a chunk that arrives after the play head starts this far ahead

  // Runs in the audio thread: resample the device rate to 24 kHz, post 40 ms PCM16 chunks.
  const WORKLET = `
class LiveCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / ${RATE};
    this.pos = 0; this.acc = 0; this.n = 0; this.prev = 0;
    this.out = new Int16Array(${CHUNK}); this.k = 0;
  }
  push(v) {
    v = Math.max(-1, Math.min(1, v));
    this.out[this.k++] = v < 0 ? v * 32768 : v * 32767;
    if (this.k === this.out.length) {
      this.port.postMessage(this.out.buffer, [this.out.buffer]);
      this.out = new Int16Array(${CHUNK}); this.k = 0;
    }
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    if (this.ratio >= 1) {
      // Down: average the input samples that fall into each output sample (a box filter,
      // enough against aliasing for speech that the server hears at 16 kHz anyway).
      for (let i = 0; i < ch.length; i++) {
        this.acc += ch[i]; this.n++; this.pos += 1;
        if (this.pos >= this.ratio) { this.pos -= this.ratio; this.push(this.acc / this.n); this.acc = 0; this.n = 0; }
      }
    } else {
      // Up (a device slower than 24 kHz): linear interpolation.
      for (let i = 0; i < ch.length; i++) {
        const x = ch[i];
        while (this.pos < 1) { this.push(this.prev + (x - this.prev) * this.pos); this.pos += this.ratio; }
        this.pos -= 1; this.prev = x;
      }
    }
    return true;
  }
}
registerProcessor("live-capture", LiveCapture);
`;

  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  function fromBase64Pcm16(b64) {
    const bin = atob(b64);
    const n = bin.length >> 1;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
      if (v >= 0x8000) v -= 0x10000;
      out[i] = v / 32768;
    }
    return out;
  }

  function inputValue(id) {
    const el = document.querySelector(`#${id} input`);
    return el && el.value ? el.value.trim() : "";
  }

  class LiveClient {
    constructor(root) {
      this.root = root;
      this.$ = (name) => root.querySelector(`[data-live="${name}"]`);
      this.ws = null;
      this.ctx = null;
      this.stream = null;
      this.node = null;
      this.stopping = false;
      this.playHead = 0;
      this.sources = []; // {src, start, dur, item}
      this.cut = new Set(); // items whose remaining audio is dropped (barge-in)
      this.turns = new Map(); // user item id → turn row state
      this.turn = null; // the turn a response belongs to
      this.counts = { sent: 0, chunks: 0, "turns-count": 0, truncated: 0 };
      this.$("start").addEventListener("click", () => this.start());
      this.$("start").disabled = false; // drawn disabled: a click before this would do nothing
      this.$("stop").addEventListener("click", () => this.stop("stopped"));
    }

    show(name, text) { const el = this.$(name); if (el) el.textContent = text; }
    count(name) { this.counts[name]++; this.show(name, String(this.counts[name])); }
    fail(message) { this.show("error", message); }
    state(text) { this.show("state", text); }

    async start() {
      if (this.ws) return;
      this.fail("");
      if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
        this.fail("The microphone needs a secure page: open the UI over https or at http://localhost.");
        return;
      }
      this.$("start").disabled = true;
      this.stopping = false;
      try {
        // Made inside the click, before any await, so the autoplay policy lets it play.
        this.ctx = new AudioContext({ latencyHint: "interactive" });
        this.state("asking for the microphone…");
        this.stream = await navigator.mediaDevices.getUserMedia({
          // Echo cancellation keeps the reply coming out of the speakers from barging in.
          audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        });
        const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
        await this.ctx.audioWorklet.addModule(url);
        URL.revokeObjectURL(url);
        await this.ctx.resume();
      } catch (err) {
        this.fail(`Microphone unavailable: ${err && err.message ? err.message : err}`);
        this.release();
        return;
      }
      this.showPath();
      const model = inputValue("pipeline");
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const query = model ? `?model=${encodeURIComponent(model)}` : "";
      this.state("connecting…");
      const ws = new WebSocket(`${proto}//${location.host}${this.root.dataset.relay}${query}`);
      this.ws = ws;
      // A socket from an earlier Start must not touch the session that replaced it.
      ws.onopen = () => { if (ws === this.ws) this.opened(); };
      ws.onmessage = (e) => { if (ws === this.ws) this.onEvent(e.data); };
      ws.onclose = (e) => { if (ws === this.ws) this.closed(e); };
    }

    opened() {
      const voice = inputValue("voice");
      const session = {
        type: "realtime",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: RATE },
            turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
          },
          output: Object.assign({ format: { type: "audio/pcm", rate: RATE } }, voice ? { voice } : {}),
        },
      };
      this.send({ type: "session.update", session });
      const source = this.ctx.createMediaStreamSource(this.stream);
      this.node = new AudioWorkletNode(this.ctx, "live-capture");
      this.node.port.onmessage = (e) => {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) {
          this.send({ type: "input_audio_buffer.append", audio: toBase64(e.data) });
          this.count("sent");
        }
      };
      source.connect(this.node);
      this.$("stop").disabled = false;
      this.state("live: speak");
    }

    send(event) { this.ws.send(JSON.stringify(event)); }

    showPath() {
      const ms = (s) => (typeof s === "number" ? `${Math.round(s * 1000)} ms` : "n/a");
      const track = this.stream.getAudioTracks()[0];
      const settings = track && track.getSettings ? track.getSettings() : {};
      this.show(
        "path",
        `device ${this.ctx.sampleRate} Hz → 24 kHz; capture chunk 40 ms; ` +
          `input latency ${ms(settings.latency)}, output base ${ms(this.ctx.baseLatency)} + ` +
          `device ${ms(this.ctx.outputLatency)}`,
      );
    }

    // The context time the speakers are playing now (currentTime runs ahead by the output latency).
    heard() {
      const ts = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
      return ts && ts.contextTime > 0 ? ts.contextTime : this.ctx.currentTime;
    }

    playing() { return this.sources.some((s) => s.start + s.dur > this.heard()); }

    play(b64, item) {
      if (this.cut.has(item)) return;
      const samples = fromBase64Pcm16(b64);
      if (!samples.length) return;
      const buf = this.ctx.createBuffer(1, samples.length, RATE);
      buf.copyToChannel(samples, 0);
      const src = this.ctx.createBufferSource();
      src.buffer = buf;
      src.connect(this.ctx.destination);
      // Gapless: each chunk starts where the previous one ends, unless it came late.
      const now = this.ctx.currentTime;
      const start = Math.max(this.playHead, now + LEAD_S);
      // Only the current reply's chunks are needed (to measure what was played at a cut).
      this.sources = this.sources.filter((s) => s.item === item || s.start + s.dur > now);
      src.start(start);
      this.playHead = start + buf.duration;
      this.sources.push({ src, start, dur: buf.duration, item });
      this.count("chunks");
      return start;
    }

    bargeIn() {
      const now = this.heard();
      const current = this.sources.filter((s) => s.start + s.dur > now);
      if (!current.length) return;
      const item = current[0].item;
      const played = this.sources
        .filter((s) => s.item === item)
        .reduce((sum, s) => sum + Math.min(Math.max(now - s.start, 0), s.dur), 0);
      for (const s of this.sources) {
        try { s.src.stop(); } catch (_) { /* already ended */ }
      }
      this.sources = [];
      this.playHead = 0;
      this.cut.add(item);
      const ms = Math.floor(played * 1000);
      this.send({ type: "conversation.item.truncate", item_id: item, content_index: 0, audio_end_ms: ms });
      this.count("truncated");
      const turn = [...this.turns.values()].find((t) => t.replyItem === item);
      if (turn) { turn.cutAt = ms; this.row(turn); }
    }

    row(turn) {
      const cells = turn.tr.children;
      cells[1].textContent = turn.user;
      cells[2].textContent = turn.reply;
      cells[3].textContent = turn.server;
      cells[4].textContent = turn.received;
      let status = turn.status;
      if (turn.cutAt !== undefined) status += ` · cut at ${turn.cutAt} ms`;
      if (turn.kept !== undefined) status += ` · server kept ${turn.kept} ms`;
      cells[5].textContent = status;
    }

    newTurn(item) {
      this.count("turns-count");
      const tr = document.createElement("tr");
      for (let i = 0; i < 6; i++) tr.appendChild(document.createElement("td"));
      tr.children[0].textContent = String(this.counts["turns-count"]);
      this.$("turns").appendChild(tr);
      const turn = { tr, item, user: "…", reply: "", server: "", received: "", status: "listening", stoppedAt: null, firstAudio: false };
      this.turns.set(item, turn);
      this.turn = turn;
      this.row(turn);
      return turn;
    }

    onEvent(data) {
      let ev;
      try { ev = JSON.parse(data); } catch (_) { this.fail("The server sent a frame that is not JSON."); return; }
      const turn = this.turn;
      switch (ev.type) {
        case "input_audio_buffer.speech_started":
          if (this.playing()) this.bargeIn();
          this.newTurn(ev.item_id);
          break;
        case "input_audio_buffer.speech_stopped": {
          const t = this.turns.get(ev.item_id) || turn;
          if (t) { t.stoppedAt = performance.now(); t.status = "thinking"; this.row(t); }
          break;
        }
        case "conversation.item.input_audio_transcription.completed": {
          const t = this.turns.get(ev.item_id);
          if (t) { t.user = ev.transcript; this.row(t); }
          this.show("user", ev.transcript);
          break;
        }
        case "conversation.item.input_audio_transcription.failed": {
          const t = this.turns.get(ev.item_id);
          if (t) { t.user = "(not understood)"; this.row(t); }
          break;
        }
        case "response.created":
          this.show("reply", "");
          if (turn) { turn.reply = ""; turn.status = "answering"; this.row(turn); }
          break;
        case "response.output_audio_transcript.delta":
        case "response.output_text.delta":
          // Deltas carry their own spacing (a sentence after the first starts with a space).
          if (turn) { turn.reply += ev.delta; this.row(turn); }
          this.show("reply", this.$("reply").textContent + ev.delta);
          break;
        case "response.output_audio.delta": {
          if (turn && !turn.replyItem) turn.replyItem = ev.item_id;
          const start = this.play(ev.delta, ev.item_id);
          if (turn && !turn.firstAudio && start !== undefined && turn.stoppedAt !== null) {
            turn.firstAudio = true;
            const received = performance.now() - turn.stoppedAt;
            // Until it is heard: the scheduling lead, the context's processing and the device.
            const after = start - this.ctx.currentTime + (this.ctx.baseLatency || 0) + (this.ctx.outputLatency || 0);
            const audible = received + after * 1000;
            turn.received = `${Math.round(received)} ms (audible ≈ ${Math.round(audible)} ms)`;
            this.row(turn);
          }
          break;
        }
        case "response.done": {
          const r = ev.response || {};
          if (turn) {
            const ms = r.metadata && r.metadata.speech_stopped_to_first_audio_ms;
            turn.server = ms ? `${ms} ms` : "";
            const reason = r.status_details && r.status_details.reason;
            turn.status = reason ? `${r.status} (${reason})` : r.status;
            this.row(turn);
          }
          break;
        }
        case "conversation.item.truncated": {
          // The server confirms what it keeps of the reply the user cut off.
          const t = [...this.turns.values()].find((x) => x.replyItem === ev.item_id);
          if (t) { t.kept = ev.audio_end_ms; this.row(t); }
          break;
        }
        case "error": {
          const e = ev.error || {};
          this.fail(`Error${e.code ? ` (${e.code})` : ""}: ${e.message || "unknown"}`);
          break;
        }
        default:
          break;
      }
    }

    closed(e) {
      if (!this.stopping) {
        const why = e.reason ? `: ${e.reason}` : "";
        const prior = this.$("error").textContent;
        this.fail(`${prior ? prior + " — " : ""}The live session closed (code ${e.code}${why}).`);
      }
      this.release();
      this.state("idle");
    }

    stop(why) {
      this.stopping = true;
      if (this.ws) this.ws.close(1000, why);
      this.release();
      this.state("idle");
    }

    release() {
      for (const s of this.sources) { try { s.src.stop(); } catch (_) { /* ended */ } }
      this.sources = [];
      if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); }
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      if (this.ctx) this.ctx.close();
      this.ws = null; this.ctx = null; this.stream = null; this.node = null;
      this.$("start").disabled = false;
      this.$("stop").disabled = true;
    }
  }

  // Gradio draws the page after this script loads: attach when the live block appears.
  window.liveClient = {
    attach(root) {
      if (root && !root.dataset.attached) {
        root.dataset.attached = "yes";
        root.liveClient = new LiveClient(root);
      }
    },
  };
})();
