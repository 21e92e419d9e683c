// jssip-peer.mjs: a JsSIP 3.13.8 user agent in Node, driven by JSON
// commands on stdin and reporting JSON events on stdout, one per line (the
// protocol is described in interop/node/README.md). JsSIP insists on
// WebRTC, so a small fake RTCPeerConnection that offers and answers with a
// fixed SDP is installed on globalThis; no media flows.
//
//   node jssip-peer.mjs --server ws://127.0.0.1:PORT/ --user bob \
//        --password bob-secret --domain sipua.test

import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { commands, config, emit, exitSoon, fixedSDP, log, sessionId } from "./common.mjs";

const cfg = config();

// The browser globals JsSIP looks for, before it is loaded.
class FakeSessionDescription {
  constructor(init = {}) {
    this.type = init.type;
    this.sdp = init.sdp;
  }
  toJSON() {
    return { type: this.type, sdp: this.sdp };
  }
}

class FakePeerConnection extends EventTarget {
  constructor() {
    super();
    this.id = sessionId();
    this.version = 0;
    this.signalingState = "stable";
    this.iceGatheringState = "complete"; // JsSIP then sends the SDP at once
    this.iceConnectionState = "new";
    this.connectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
  }
  createOffer() {
    return Promise.resolve({ type: "offer", sdp: fixedSDP(this.id, ++this.version, cfg.rtpPort) });
  }
  createAnswer() {
    return Promise.resolve({ type: "answer", sdp: fixedSDP(this.id, ++this.version, cfg.rtpPort) });
  }
  setLocalDescription(desc) {
    this.localDescription = new FakeSessionDescription(desc);
    this.signalingState = desc.type === "offer" ? "have-local-offer" : "stable";
    return Promise.resolve();
  }
  setRemoteDescription(desc) {
    this.remoteDescription = new FakeSessionDescription(desc);
    this.signalingState = desc.type === "offer" ? "have-remote-offer" : "stable";
    return Promise.resolve();
  }
  addTrack() {}
  getSenders() {
    return [];
  }
  getReceivers() {
    return [];
  }
  getLocalStreams() {
    return [];
  }
  getRemoteStreams() {
    return [];
  }
  close() {
    this.signalingState = "closed";
  }
}

globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = FakePeerConnection;
globalThis.RTCSessionDescription = FakeSessionDescription;

// Loaded after the console redirection in common.mjs: JsSIP binds
// console.info when its loggers are created.
const { default: JsSIP } = await import("jssip");
// JsSIP checks window.RTCPeerConnection before every call.
globalThis.window = globalThis;
const libVersion = JSON.parse(readFileSync(new URL("./node_modules/jssip/package.json", import.meta.url))).version;

// JsSIP logs through the debug package, to stderr: the SIP trace included.
JsSIP.debug.enable("JsSIP:*");

const noMedia = { mediaConstraints: { audio: false, video: false }, pcConfig: { iceServers: [] } };
// With --session-timers N, calls ask for (and answers accept) an N-second
// session interval; JsSIP's floor is 60 s.
if (cfg.sessionTimers > 0) noMedia.sessionTimersExpires = cfg.sessionTimers;

const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(cfg.server)],
  uri: `sip:${cfg.user}@${cfg.domain}`,
  authorization_user: cfg.user,
  password: cfg.password,
  display_name: cfg.display || undefined,
  register: false,
  register_expires: 300,
  session_timers: cfg.sessionTimers > 0,
  user_agent: `sipua-interop JsSIP/${libVersion}`,
});

const calls = new Map(); // call id -> { id, session, direction, reason }
let callCounter = 0;

ua.on("registered", () => emit("registered"));
ua.on("unregistered", () => emit("unregistered"));
ua.on("registrationFailed", (e) =>
  emit("register_failed", { code: e.response ? e.response.status_code : 0, reason: e.cause }),
);
ua.on("disconnected", (e) => emit("disconnected", { error: e && e.error ? "transport error" : "" }));
ua.on("newRTCSession", ({ originator, session, request }) => {
  const id = track(session, originator === "remote" ? "incoming" : "outgoing");
  if (originator === "remote") {
    emit("invite", {
      call: id,
      from: request.from.uri.toString(),
      to: request.to.uri.toString(),
      display: request.from.display_name || "",
      callId: request.call_id,
    });
  } else {
    emit("calling", { call: id, target: request.ruri.toString(), callId: request.call_id });
  }
});
ua.on("newMessage", ({ originator, message, request }) => {
  if (originator !== "remote") return;
  emit("message", { from: request.from.uri.toString(), body: request.body || "", contentType: request.getHeader("content-type") || "" });
});

function track(session, direction) {
  const id = `c${++callCounter}`;
  const call = { id, session, direction, reason: "" };
  calls.set(id, call);
  session.on("progress", (e) => {
    if (e.originator === "remote" && e.response) emit("progress", { call: id, code: e.response.status_code });
  });
  session.on("accepted", () => emit("accepted", { call: id }));
  session.on("confirmed", (e) => {
    if (e.originator === "remote") emit("ack", { call: id });
  });
  session.on("ended", (e) => {
    calls.delete(id);
    emit("terminated", { call: id, reason: call.reason || (e.originator === "remote" ? "remote_bye" : "local_bye"), cause: e.cause });
  });
  session.on("failed", (e) => {
    calls.delete(id);
    let reason = call.reason;
    if (!reason) {
      if (e.originator === "remote" && e.message && e.message.status_code) {
        reason = "rejected";
        emit("rejected", { call: id, code: e.message.status_code, reason: e.message.reason_phrase });
      } else {
        reason = e.cause === JsSIP.C.causes.CANCELED ? (e.originator === "remote" ? "remote_cancel" : "canceled") : "failed";
      }
    }
    emit("terminated", { call: id, reason, cause: e.cause });
  });
  session.on("newInfo", ({ originator, info, request }) => {
    if (originator === "remote") {
      emit("info", { call: id, contentType: request.getHeader("content-type") || "", body: request.body || "" });
      return;
    }
    info.on("succeeded", (e) => emit("info_sent", { call: id, code: e.response.status_code }));
    info.on("failed", (e) => emit("info_failed", { call: id, code: e.response ? e.response.status_code : 0 }));
  });
  // JsSIP reports an INFO with application/dtmf-relay as a DTMF tone, not
  // as newInfo: report both.
  session.on("newDTMF", ({ originator, dtmf, request }) => {
    if (originator !== "remote") return;
    emit("dtmf", { call: id, tone: dtmf.tone, duration: dtmf.duration });
    if (request) {
      emit("info", { call: id, contentType: request.getHeader("content-type") || "", body: request.body || "" });
    }
  });
  // An UPDATE from the peer (RFC 3311): with an offer, or a session
  // refresh without one.
  session.on("update", ({ request }) =>
    emit("update", { call: id, sdp: Boolean(request.body), sessionExpires: request.getHeader("Session-Expires") || "" }));
  session.on("reinvite", (e) =>
    emit("reinvite", { call: id, direction: sdpDirection((e && e.request && e.request.body) || "") }));
  session.on("refer", ({ request, accept }) => {
    const target = request.refer_to.uri.toString();
    emit("refer", { call: id, target });
    // JsSIP has already answered 202; accepting places the new call and
    // reports its progress to the referrer with NOTIFY.
    if (cfg.followRefer) accept(null, noMedia);
  });
  return id;
}

function pick(cmd, filter = () => true) {
  if (cmd.call) {
    const c = calls.get(cmd.call);
    if (!c) throw new Error(`no call ${cmd.call}`);
    return c;
  }
  const all = [...calls.values()].filter(filter);
  if (all.length === 0) throw new Error(`no call for ${cmd.cmd}`);
  return all[all.length - 1];
}

function target(cmd) {
  if (!cmd.target) throw new Error("no target");
  return cmd.target.startsWith("sip") || cmd.target.includes("@") ? cmd.target : `sip:${cmd.target}@${cfg.domain}`;
}

const waiting = (c) => c.direction === "incoming" && c.session.isInProgress();
const established = (c) => c.session.isEstablished();

let quitting = false;
async function quit() {
  if (quitting) return;
  quitting = true;
  exitSoon(0);
  for (const c of calls.values()) {
    try {
      c.session.terminate();
    } catch (e) {
      log("terminate:", e.message);
    }
  }
  if (ua.isRegistered()) {
    await new Promise((resolve) => {
      ua.once("unregistered", resolve);
      ua.once("registrationFailed", resolve);
      ua.unregister();
      setTimeout(resolve, 1500).unref();
    });
  }
  ua.stop();
  // ua.stop() closes the socket once pending transactions are done.
  await new Promise((resolve) => setTimeout(resolve, 100));
  emit("stopped");
  process.exit(0);
}

const subscriptions = new Map(); // "s1", ... -> JsSIP.Subscriber
let subCounter = 0;

async function handle(cmd) {
  switch (cmd.cmd) {
    case "subscribe": {
      // {"cmd":"subscribe","target":"sip:alice@…","event":"presence","accept":…}:
      // each NOTIFY is reported as "notify_sub", as the SIP.js peer does.
      const id = `s${++subCounter}`;
      const event = cmd.event || "presence";
      const accept = cmd.accept || (event === "dialog" ? "application/dialog-info+xml" : "application/pidf+xml");
      const sub = ua.subscribe(target(cmd), event, accept, { expires: 300 });
      subscriptions.set(id, sub);
      sub.on("active", () => emit("subscribed", { sub: id }));
      sub.on("notify", (isFinal, request, body, contentType) =>
        emit("notify_sub", {
          sub: id,
          package: event,
          body: body || "",
          contentType: contentType || "",
          state: request.getHeader("subscription-state") || "",
        }));
      sub.on("terminated", (code, reason) => emit("unsubscribed", { sub: id, code, reason: reason || "" }));
      emit("subscribing", { sub: id, target: target(cmd), package: event });
      sub.subscribe();
      return;
    }
    case "unsubscribe": {
      const sub = subscriptions.get(cmd.sub);
      if (!sub) throw new Error(`no subscription ${cmd.sub}`);
      sub.terminate();
      return;
    }
    case "register":
      ua.register();
      return;
    case "unregister":
      ua.unregister();
      return;
    case "call":
      ua.call(target(cmd), { ...noMedia, rtcOfferConstraints: { offerToReceiveAudio: true } });
      return;
    case "answer":
      pick(cmd, waiting).session.answer(noMedia);
      return;
    case "reject": {
      const c = pick(cmd, waiting);
      c.reason = "local_reject";
      c.session.terminate({ status_code: cmd.code || 486 });
      return;
    }
    case "hangup": {
      const c = pick(cmd);
      if (established(c)) {
        c.reason = "local_bye";
      } else {
        c.reason = c.direction === "outgoing" ? "canceled" : "local_reject";
      }
      c.session.terminate(c.direction === "incoming" && !established(c) ? { status_code: cmd.code || 486 } : {});
      return;
    }
    case "message": {
      const handlers = {
        succeeded: (e) => emit("message_sent", { code: e.response.status_code }),
        failed: (e) => emit("message_failed", { code: e.response ? e.response.status_code : 0, reason: e.cause }),
      };
      const opts = { contentType: cmd.contentType || "text/plain", eventHandlers: handlers };
      // JsSIP 3.13 sends MESSAGE out of dialog only (no RTCSession API for it).
      if (cmd.call) throw new Error("JsSIP cannot send MESSAGE inside a dialog");
      ua.sendMessage(target(cmd), cmd.body || "", opts);
      return;
    }
    case "info":
      pick(cmd, established).session.sendInfo(cmd.contentType || "application/dtmf-relay", cmd.body ?? "Signal=5\r\nDuration=160\r\n");
      return;
    case "refer": {
      const c = pick(cmd, established);
      c.session.refer(target(cmd), {
        eventHandlers: {
          requestSucceeded: (e) => emit("refer_sent", { call: c.id, code: e.response.status_code }),
          requestFailed: (e) => emit("refer_failed", { call: c.id, code: e.response ? e.response.status_code : 0, reason: e.cause }),
          trying: (e) => emit("notify", { call: c.id, body: (e.request.body || "").trim() }),
          progress: (e) => emit("notify", { call: c.id, body: (e.request.body || "").trim() }),
          accepted: (e) => emit("notify", { call: c.id, body: (e.request.body || "").trim() }),
          failed: (e) => emit("notify", { call: c.id, body: e.request ? (e.request.body || "").trim() : "" }),
        },
      });
      return;
    }
    case "reinvite": {
      const c = pick(cmd, established);
      // renegotiate() refuses while another offer/answer is in progress
      // (e.g. the other side's re-INVITE awaits its ACK): try again a while.
      for (let tries = 0; ; tries++) {
        if (c.session.renegotiate({}, () => emit("reinvite_sent", { call: c.id, code: 200 }))) return;
        if (tries >= 60) throw new Error("renegotiate refused (session not ready to re-offer)");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    case "update": {
      // An UPDATE with a new offer (JsSIP's renegotiate with useUpdate).
      const c = pick(cmd, established);
      for (let tries = 0; ; tries++) {
        if (c.session.renegotiate({ useUpdate: true }, () => emit("update_sent", { call: c.id, code: 200 }))) return;
        if (tries >= 60) throw new Error("renegotiate refused (session not ready to re-offer)");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    case "quit":
      return quit();
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

process.on("SIGTERM", () => quit());
process.on("unhandledRejection", (e) => emit("error", { error: `unhandled: ${e && e.message ? e.message : e}` }));

ua.once("connected", () => {
  emit("ready", { lib: "jssip", version: libVersion, user: cfg.user, server: cfg.server });
  commands(handle, quit);
});
ua.start();

// sdpDirection returns the direction attribute of an SDP offer (the first
// one found), "sendrecv" when none is given (RFC 3264 §5.1).
function sdpDirection(sdp) {
  const m = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(sdp);
  return m ? m[1] : "sendrecv";
}
