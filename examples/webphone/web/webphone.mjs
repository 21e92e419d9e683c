// webphone.mjs: the webphone's page logic. A SIP.js 0.21.2 user agent
// (served by the Go program from /sipjs/) registers over WebSocket, calls
// the Go bot with real WebRTC audio, sends DTMF from the keypad (RFC 4733
// in the media, or SIP INFO when the call has no telephone-event) and hangs
// up. It shows the call's state, the page's media counters and, from
// /bot.json, the bot's view of the call.
//
// Every state change is also an event, {"event": NAME, "t": ms, …}: logged
// on the page, and handed to the function webphoneEvent when a driver (the
// test, over the Chrome DevTools Protocol) installed one. Events: ready,
// registered, unregistered, register_failed, calling, progress, state
// (state: Establishing, Established, Terminated), rejected, dtmf (tone,
// method), disconnected, error.

import { Inviter, Registerer, RegistererState, SessionState, UserAgent, Web } from "/sipjs/index.js";

const $ = (id) => document.getElementById(id);
const started = Date.now();

function emit(event, fields = {}) {
  const line = JSON.stringify({ event, t: Date.now() - started, ...fields });
  if (typeof globalThis.webphoneEvent === "function") globalThis.webphoneEvent(line);
  const pre = document.querySelector("#log pre");
  pre.textContent += `${((Date.now() - started) / 1000).toFixed(2)}s ${event} ${JSON.stringify(fields)}\n`;
  pre.scrollTop = pre.scrollHeight;
}

function badge(el, text, kind = "") {
  el.textContent = text;
  el.className = `badge ${kind}`;
}

// loopbackOnly keeps only the 127.0.0.1 UDP candidates of an SDP, and
// points its m= and c= lines at the first of them, when it has any: the
// bot runs on this machine, and the browser's other addresses only slow
// ICE down. Without loopback candidates (a browser that gathers none), the
// SDP is left as it is.
function loopbackOnly(sdp) {
  const isLoop = (l) => {
    const f = l.slice("a=candidate:".length).split(" ");
    return f.length >= 6 && f[2].toLowerCase() === "udp" && f[4] === "127.0.0.1" ? f : null;
  };
  const lines = sdp.split("\r\n");
  if (!lines.some((l) => l.startsWith("a=candidate:") && isLoop(l))) return sdp;
  const out = [];
  let m = -1;
  let c = -1;
  let port = 0;
  const fix = () => {
    if (m < 0 || port === 0) return;
    out[m] = out[m].replace(/^(m=\S+ )\d+/, `$1${port}`);
    if (c >= 0) out[c] = "c=IN IP4 127.0.0.1";
  };
  for (const l of lines) {
    if (l.startsWith("m=")) {
      fix();
      [m, c, port] = [out.length, -1, 0];
    } else if (l.startsWith("c=") && m >= 0) {
      c = out.length;
    } else if (l.startsWith("a=candidate:")) {
      const f = isLoop(l);
      if (!f) continue;
      if (f[1] === "1" && port === 0) port = Number(f[5]);
    }
    out.push(l);
  }
  fix();
  return out.join("\r\n");
}

class LoopbackSessionDescriptionHandler extends Web.SessionDescriptionHandler {
  getLocalSessionDescription() {
    return super.getLocalSessionDescription().then((d) => ({ type: d.type, sdp: loopbackOnly(d.sdp) }));
  }
}

const mediaStreamFactory = Web.defaultMediaStreamFactory();
function sessionDescriptionHandlerFactory(session) {
  return new LoopbackSessionDescriptionHandler(session.userAgent.getLogger("sip.SessionDescriptionHandler"), mediaStreamFactory, {
    iceGatheringTimeout: 2000,
    // Host candidates only: no STUN or TURN server is contacted.
    peerConnectionConfiguration: { ...Web.defaultPeerConnectionConfiguration(), iceServers: [] },
  });
}

let ua = null;
let registerer = null;
let session = null; // the current call
let established = 0; // when it was answered
let sent = "";
const audioOnly = { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } };

function buttons() {
  const ready = ua !== null && ua.isConnected();
  $("register").disabled = !ready;
  $("call").disabled = !ready || session !== null;
  $("hangup").disabled = session === null;
  for (const b of document.querySelectorAll("#keypad button")) b.disabled = !session || session.state !== SessionState.Established;
}

async function start(cfg) {
  ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${cfg.user}@${cfg.domain}`),
    authorizationUsername: cfg.user,
    authorizationPassword: cfg.password,
    userAgentString: "sipua webphone (SIP.js 0.21.2)",
    transportOptions: { server: cfg.server },
    sessionDescriptionHandlerFactory,
    logBuiltinEnabled: false,
    delegate: {
      onConnect: () => buttons(),
      onDisconnect: (error) => {
        emit("disconnected", { error: error ? String(error.message || error) : "" });
        badge($("regstate"), "disconnected", "bad");
        buttons();
      },
      // This page places calls; calls to it are declined.
      onInvite: (invitation) => invitation.reject({ statusCode: 486 }),
    },
  });
  registerer = new Registerer(ua, { expires: 300 });
  registerer.stateChange.addListener((s) => {
    if (s === RegistererState.Registered) {
      badge($("regstate"), "registered", "ok");
      emit("registered");
    } else if (s === RegistererState.Unregistered) {
      badge($("regstate"), "unregistered");
      emit("unregistered");
    }
  });
  await ua.start();
  badge($("regstate"), "connected");
  buttons();
  emit("ready", { server: cfg.server, user: cfg.user });
}

async function register() {
  badge($("regstate"), "registering…", "busy");
  await registerer.register({
    requestDelegate: {
      onReject: (r) => {
        badge($("regstate"), `failed: ${r.message.statusCode}`, "bad");
        emit("register_failed", { code: r.message.statusCode, reason: r.message.reasonPhrase });
      },
    },
  });
}

async function call() {
  const target = UserAgent.makeURI($("target").value.trim());
  if (!target) throw new Error(`bad target ${$("target").value}`);
  const inviter = new Inviter(ua, target, audioOnly);
  let rejected = false;
  session = inviter;
  sent = "";
  $("digits").textContent = "–";
  badge($("callstate"), "calling", "busy");
  inviter.stateChange.addListener((s) => {
    emit("state", { state: s });
    if (s === SessionState.Established) {
      established = Date.now();
      badge($("callstate"), "in call", "ok");
      const sdh = inviter.sessionDescriptionHandler;
      if (sdh) $("remote").srcObject = sdh.remoteMediaStream;
    } else if (s === SessionState.Terminated) {
      if (!rejected) badge($("callstate"), "ended");
      session = null;
      established = 0;
    }
    buttons();
  });
  buttons();
  emit("calling", { target: target.toString() });
  await inviter.invite({
    ...audioOnly,
    requestDelegate: {
      onProgress: (r) => {
        if (r.message.statusCode === 180) badge($("callstate"), "ringing", "busy");
        emit("progress", { code: r.message.statusCode });
      },
      onReject: (r) => {
        rejected = true;
        badge($("callstate"), `${r.message.statusCode} ${r.message.reasonPhrase}`, "bad");
        emit("rejected", { code: r.message.statusCode, reason: r.message.reasonPhrase });
      },
    },
  });
}

async function hangup() {
  const s = session;
  if (!s) return;
  if (s.state === SessionState.Established) await s.bye();
  else if (s.state === SessionState.Establishing || s.state === SessionState.Initial) await s.cancel();
}

// dtmf sends one tone: as an RFC 4733 event in the audio stream when the
// call negotiated telephone-event (RTCDTMFSender, once the media is
// connected), or as SIP INFO (application/dtmf-relay) when it did not or
// when the "SIP INFO" box is ticked.
async function dtmf(tone) {
  const s = session;
  if (!s || s.state !== SessionState.Established) return;
  const pc = s.sessionDescriptionHandler?.peerConnection;
  const sender = pc?.getSenders().find((x) => x.track?.kind === "audio")?.dtmf;
  let method = "info";
  if (sender && !$("dtmf-info").checked) {
    // canInsertDTMF turns true when the DTLS transport is up: a tone
    // pressed just after the answer waits for it (at most 3 s).
    for (let i = 0; i < 30 && !sender.canInsertDTMF && pc.connectionState !== "failed"; i++) await new Promise((r) => setTimeout(r, 100));
    if (sender.canInsertDTMF) {
      // Append to the tones not played yet: insertDTMF replaces them.
      sender.insertDTMF(sender.toneBuffer + tone, 120, 80);
      method = "rfc4733";
    }
  }
  if (method === "info") {
    await s.info({
      requestOptions: {
        body: { contentDisposition: "render", contentType: "application/dtmf-relay", content: `Signal=${tone}\r\nDuration=120` },
      },
    });
  }
  sent += tone;
  $("digits").textContent = sent;
  emit("dtmf", { tone, method });
}

// media shows this page's getStats() for the call.
async function media() {
  const pc = session?.sessionDescriptionHandler?.peerConnection;
  if (!pc) return;
  const report = await pc.getStats();
  let sentP = 0;
  let recvP = 0;
  let codecS = "";
  let codecR = "";
  let pairId = "";
  let dtls = "";
  const codec = (id) => (id && report.get(id) ? report.get(id).mimeType.replace("audio/", "") : "");
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio") {
      sentP += s.packetsSent || 0;
      codecS = codec(s.codecId) || codecS;
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      recvP += s.packetsReceived || 0;
      codecR = codec(s.codecId) || codecR;
    } else if (s.type === "transport") {
      pairId = s.selectedCandidatePairId || pairId;
      dtls = s.dtlsState || dtls;
    }
  });
  $("m-ice").textContent = `${pc.iceConnectionState} / ${dtls || "–"}`;
  $("m-codec").textContent = `${codecS || "–"} / ${codecR || "–"}`;
  $("m-sent").textContent = sentP;
  $("m-recv").textContent = recvP;
  const pair = pairId && report.get(pairId);
  if (pair) {
    const a = (id) => {
      const c = report.get(id);
      return c ? `${c.address}:${c.port}` : "?";
    };
    $("m-pair").textContent = `${a(pair.localCandidateId)} ⇄ ${a(pair.remoteCandidateId)}`;
  }
  return { packetsSent: sentP, packetsReceived: recvP, ice: pc.iceConnectionState, dtls, codecSent: codecS, codecReceived: codecR };
}

// bot shows the bot's view of its latest call.
async function bot() {
  const r = await fetch("/bot.json");
  const b = await r.json();
  const c = b.calls && b.calls[b.calls.length - 1];
  if (!c) return b;
  $("b-call").textContent = `#${b.calls.length} from ${c.from}`;
  $("b-state").textContent = c.ended ? `${c.state} (${c.ended})` : `${c.state}, ICE ${c.ice}`;
  $("b-digits").textContent = c.digits || "–";
  $("b-packets").textContent = `${c.packetsReceived} / ${c.packetsSent}`;
  $("b-audio").textContent = `${c.codec || "–"}, ${c.echoing ? "echoing your audio" : "playing the prompt"}`;
  return b;
}

function tick() {
  if (established) {
    const s = Math.floor((Date.now() - established) / 1000);
    $("duration").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  media().catch(() => {});
  bot().catch(() => {});
}

function guard(f) {
  return () => f().catch((e) => emit("error", { error: String(e?.message || e) }));
}

async function main() {
  const cfg = await (await fetch("/config.json")).json();
  for (const k of ["server", "user", "password", "domain", "target"]) $(k).value = cfg[k];
  for (const t of "123456789*0#") {
    const b = document.createElement("button");
    b.textContent = t;
    b.id = `key-${t === "*" ? "star" : t === "#" ? "hash" : t}`;
    b.addEventListener("click", guard(() => dtmf(t)));
    $("keypad").append(b);
  }
  $("register").addEventListener("click", guard(register));
  $("call").addEventListener("click", guard(call));
  $("hangup").addEventListener("click", guard(hangup));
  buttons();
  setInterval(tick, 500);
  const read = () => ({ server: $("server").value, user: $("user").value, password: $("password").value, domain: $("domain").value });
  await start(read());
}

// For the console and the test: the page's actions and readings.
globalThis.webphone = { register, call, hangup, dtmf, media, bot };
addEventListener("unhandledrejection", (e) => emit("error", { error: `unhandled: ${e.reason?.message || e.reason}` }));
main().catch((e) => {
  badge($("regstate"), "error", "bad");
  emit("error", { error: `start: ${e?.message || e}` });
});
