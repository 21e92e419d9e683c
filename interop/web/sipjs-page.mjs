// sipjs-page.mjs: a SIP.js 0.21.2 user agent in a web page, with real
// WebRTC (Chromium's fake audio device), driven by the interop tests over the
// Chrome DevTools Protocol (interop/chromium.go).
//
// Settings come from the query string: server (ws://…), user, password,
// domain. The page imports SIP.js's ES modules from /sipjs/ (the test's
// server maps that to interop/node/node_modules/sip.js/lib/).
//
// Events: one JSON object per event, {"event": NAME, "t": ms since load,
// …}, handed to the CDP binding `sipuaEvent` (Runtime.addBinding) when the
// driver installed it, and logged to the console and the page either way.
// The events and their members are those of the Node peers
// (interop/node/README.md) where they overlap: ready, registered,
// unregistered, register_failed, calling, progress, invite, accepted, ack,
// rejected, terminated, error; plus local_sdp (the SDP this page sends, after
// the loopback filter) and pc_state (ICE / DTLS / connection state changes).
//
// Commands: `await sipua.run({cmd, …})`, evaluated by the driver; the
// promise resolves with the command's result or rejects with its error.
//   register                       REGISTER (answers the 401)
//   call {target, video?, reinviteVideo?}
//                                  INVITE (audio, and video from the fake
//                                  camera when video); resolves with the call
//                                  id ("c1"…)
//   answer {call?, video?, reinviteVideo?}
//                                  200 to an incoming INVITE (audio, and
//                                  video when video)
//     reinviteVideo: re-INVITEs of the call are answered with the camera's
//     video too (else video a re-INVITE adds is received only)
//   hangup {call?}                 BYE / CANCEL / 486 as the state demands
//   stats {call?}                  getStats() summary, see stats() below
//   quit                           stops the user agent (unregisters)

import { Inviter, Registerer, RegistererState, SessionState, UserAgent, Web } from "/sipjs/index.js";

const started = Date.now();
const params = new URLSearchParams(location.search);
const cfg = {
  server: params.get("server"),
  user: params.get("user"),
  password: params.get("password") || "",
  domain: params.get("domain") || "sipua.test",
};

function emit(event, fields = {}) {
  const line = JSON.stringify({ event, t: Date.now() - started, ...fields });
  if (typeof globalThis.sipuaEvent === "function") globalThis.sipuaEvent(line);
  console.log(line);
  const pre = document.getElementById("log");
  if (pre) pre.textContent += line + "\n";
}

// loopbackOnly keeps the ICE candidates on 127.0.0.1 over UDP and points
// the m= and c= lines at the first of them. Chromium gathers on every
// interface of the host; the test's other end listens on loopback only.
function loopbackOnly(sdp) {
  const lines = sdp.split("\r\n");
  const out = [];
  let kept = 0;
  let dropped = 0;
  // Per media section: index of its m= line and c= line in out, and its
  // first kept RTP candidate's port.
  let section = null;
  const sections = [];
  for (const line of lines) {
    if (line.startsWith("m=")) {
      section = { m: out.length, c: -1, port: 0 };
      sections.push(section);
    } else if (line.startsWith("c=") && section) {
      section.c = out.length;
    } else if (line.startsWith("a=candidate:")) {
      // a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ …
      const f = line.slice("a=candidate:".length).split(" ");
      if (f.length < 6 || f[2].toLowerCase() !== "udp" || f[4] !== "127.0.0.1") {
        dropped++;
        continue;
      }
      kept++;
      if (section && f[1] === "1" && section.port === 0) section.port = Number(f[5]);
    }
    out.push(line);
  }
  for (const s of sections) {
    if (s.port === 0) continue;
    out[s.m] = out[s.m].replace(/^(m=\S+ )\d+/, `$1${s.port}`);
    if (s.c >= 0) out[s.c] = "c=IN IP4 127.0.0.1";
  }
  return { sdp: out.join("\r\n"), kept, dropped };
}

// A SIP.js web session description handler whose local SDP (after ICE
// gathering, which SIP.js waits for: no trickle over SIP) offers loopback
// candidates only.
//
// SIP.js 0.21.2 waits for a new round of ICE gathering only when it offers
// an ICE restart itself: answering the peer's restart (an offer with a new
// a=ice-ufrag, e.g. a re-INVITE after the peer reconnected) it would send
// its answer before any new candidate is gathered. The handler waits then
// too.
class LoopbackSessionDescriptionHandler extends Web.SessionDescriptionHandler {
  setDescription(sdp, options, modifiers) {
    const ufrag = (/a=ice-ufrag:(\S+)/.exec(sdp) || [])[1];
    this.remoteRestart = this.remoteUfrag !== undefined && ufrag !== undefined && ufrag !== this.remoteUfrag;
    this.remoteUfrag = ufrag;
    return super.setDescription(sdp, options, modifiers);
  }

  waitForIceGatheringComplete(restart = false, timeout = 0) {
    const r = restart || this.remoteRestart;
    this.remoteRestart = false;
    return super.waitForIceGatheringComplete(r, timeout);
  }

  getLocalSessionDescription() {
    return super.getLocalSessionDescription().then((d) => {
      const { sdp, kept, dropped } = loopbackOnly(d.sdp);
      emit("local_sdp", { type: d.type, kept, dropped, sdp });
      if (kept === 0) throw new Error("no 127.0.0.1 UDP candidate was gathered (is --allow-loopback-in-peer-connection set?)");
      return { type: d.type, sdp };
    });
  }
}

const mediaStreamFactory = Web.defaultMediaStreamFactory();
function sessionDescriptionHandlerFactory(session, options) {
  const handler = new LoopbackSessionDescriptionHandler(
    session.userAgent.getLogger("sip.SessionDescriptionHandler"),
    mediaStreamFactory,
    {
      iceGatheringTimeout: 2000,
      // No STUN or TURN server: host candidates only, nothing leaves the machine.
      peerConnectionConfiguration: { ...Web.defaultPeerConnectionConfiguration(), ...(options?.peerConnectionConfiguration || {}), iceServers: [] },
    },
  );
  return handler;
}

const calls = new Map(); // "c1"… -> { id, session, direction, reason }
let callCounter = 0;

const ua = new UserAgent({
  uri: UserAgent.makeURI(`sip:${cfg.user}@${cfg.domain}`),
  authorizationUsername: cfg.user,
  authorizationPassword: cfg.password,
  userAgentString: "sipua-interop SIP.js/0.21.2 (Chromium)",
  transportOptions: { server: cfg.server, traceSip: true },
  sessionDescriptionHandlerFactory,
  sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: { iceServers: [] } },
  logBuiltinEnabled: false,
  logLevel: "log",
  logConnector: (level, category, label, content) =>
    console.debug(`[${Date.now() - started}ms] ${level} ${category}${label ? " " + label : ""}: ${content}`),
  delegate: {
    onDisconnect: (error) => emit("disconnected", { error: error ? String(error.message || error) : "" }),
    onInvite: (invitation) => {
      const id = track(invitation, "incoming");
      emit("invite", {
        call: id,
        from: invitation.remoteIdentity.uri.toString(),
        to: invitation.localIdentity.uri.toString(),
        callId: invitation.request.callId,
      });
    },
  },
});

const registerer = new Registerer(ua, { expires: 300 });
registerer.stateChange.addListener((state) => {
  if (state === RegistererState.Registered) emit("registered");
  if (state === RegistererState.Unregistered) emit("unregistered");
});

function track(session, direction) {
  const id = `c${++callCounter}`;
  const call = { id, session, direction, reason: "" };
  calls.set(id, call);
  session.delegate = {
    onAck: () => emit("ack", { call: id }),
    onBye: (bye) => {
      call.reason = "remote_bye";
      bye.accept();
    },
    onCancel: () => {
      call.reason = "remote_cancel";
    },
    onSessionDescriptionHandler: (sdh) => watch(call, sdh),
  };
  session.stateChange.addListener((state) => {
    if (state === SessionState.Established) {
      attachRemote(session);
      emit("accepted", { call: id });
    }
    if (state === SessionState.Terminated) {
      calls.delete(id);
      // SIP.js changes the state before it calls the request delegate.
      setTimeout(() => emit("terminated", { call: id, reason: call.reason || "terminated" }), 0);
    }
  });
  return id;
}

// attachRemote plays the call's remote stream in the page's audio and
// video elements (muted): Chromium then decodes the video it receives.
function attachRemote(session) {
  const sdh = session.sessionDescriptionHandler;
  if (!sdh) return;
  for (const id of ["remote", "remoteVideo"]) {
    const el = document.getElementById(id);
    if (el && el.srcObject !== sdh.remoteMediaStream) el.srcObject = sdh.remoteMediaStream;
    if (el) el.play().catch(() => {});
  }
}

// watch reports the peer connection's state changes as pc_state events.
function watch(call, sdh) {
  const pc = sdh.peerConnection;
  if (!pc) return;
  pc.addEventListener("track", () => setTimeout(() => attachRemote(call.session), 0));
  const report = () =>
    emit("pc_state", {
      call: call.id,
      ice: pc.iceConnectionState,
      connection: pc.connectionState,
      dtls: pc.getSenders().find((s) => s.transport)?.transport.state ?? "",
    });
  pc.addEventListener("iceconnectionstatechange", report);
  pc.addEventListener("connectionstatechange", report);
}

function outgoingDelegate(call) {
  return {
    onProgress: (r) => emit("progress", { call: call.id, code: r.message.statusCode }),
    onReject: (r) => {
      call.reason = call.reason || "rejected";
      emit("rejected", { call: call.id, code: r.message.statusCode, reason: r.message.reasonPhrase });
    },
  };
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

function target(t) {
  const s = t && !t.includes("@") && !t.startsWith("sip") ? `sip:${t}@${cfg.domain}` : t;
  const uri = UserAgent.makeURI(s || "");
  if (!uri) throw new Error(`bad target ${t}`);
  return uri;
}


// mediaOptions are the SIP.js options of a call or answer command.
function mediaOptions(cmd) {
  return { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: !!cmd.video } } };
}

function reinviteOptions(session, cmd) {
  if (cmd.reinviteVideo) session.sessionDescriptionHandlerOptionsReInvite = { constraints: { audio: true, video: true } };
}

// stats summarizes the call's RTCPeerConnection.getStats(): the audio
// inbound-rtp and outbound-rtp counters, the transport's ICE and DTLS
// states and the selected candidate pair.
async function stats(call) {
  const pc = call.session.sessionDescriptionHandler?.peerConnection;
  if (!pc) throw new Error(`call ${call.id} has no peer connection`);
  const report = await pc.getStats();
  const out = {
    call: call.id,
    iceConnectionState: pc.iceConnectionState,
    connectionState: pc.connectionState,
    iceState: "",
    dtlsState: "",
    codecReceived: "",
    codecSent: "",
    packetsReceived: 0,
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    videoCodecReceived: "",
    videoCodecSent: "",
    videoPacketsReceived: 0,
    videoBytesReceived: 0,
    framesReceived: 0,
    framesDecoded: 0,
    keyFramesDecoded: 0,
    frameWidth: 0,
    frameHeight: 0,
    videoPliSent: 0,
    videoPacketsSent: 0,
    framesEncoded: 0,
    videoPliReceived: 0,
    localCandidate: "",
    remoteCandidate: "",
  };
  let pairId = "";
  const codec = (id) => (id && report.get(id) ? report.get(id).mimeType : "");
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.packetsReceived += s.packetsReceived || 0;
      out.bytesReceived += s.bytesReceived || 0;
      out.codecReceived = codec(s.codecId) || out.codecReceived;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.packetsSent += s.packetsSent || 0;
      out.bytesSent += s.bytesSent || 0;
      out.codecSent = codec(s.codecId) || out.codecSent;
    } else if (s.type === "inbound-rtp" && s.kind === "video") {
      out.videoPacketsReceived += s.packetsReceived || 0;
      out.videoBytesReceived += s.bytesReceived || 0;
      out.framesReceived += s.framesReceived || 0;
      out.framesDecoded += s.framesDecoded || 0;
      out.keyFramesDecoded += s.keyFramesDecoded || 0;
      out.frameWidth = s.frameWidth || out.frameWidth;
      out.frameHeight = s.frameHeight || out.frameHeight;
      out.videoPliSent += s.pliCount || 0;
      out.videoCodecReceived = codec(s.codecId) || out.videoCodecReceived;
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      out.videoPacketsSent += s.packetsSent || 0;
      out.framesEncoded += s.framesEncoded || 0;
      out.videoPliReceived += s.pliCount || 0;
      out.videoCodecSent = codec(s.codecId) || out.videoCodecSent;
    } else if (s.type === "transport") {
      out.iceState = s.iceState || "";
      out.dtlsState = s.dtlsState || "";
      pairId = s.selectedCandidatePairId || pairId;
    }
  });
  const pair = pairId && report.get(pairId);
  if (pair) {
    const addr = (id) => {
      const c = report.get(id);
      return c ? `${c.address}:${c.port}/${c.protocol} ${c.candidateType}` : "";
    };
    out.localCandidate = addr(pair.localCandidateId);
    out.remoteCandidate = addr(pair.remoteCandidateId);
  }
  return out;
}

async function run(cmd) {
  switch (cmd.cmd) {
    case "register":
      await registerer.register({
        requestDelegate: {
          onReject: (r) => emit("register_failed", { code: r.message.statusCode, reason: r.message.reasonPhrase }),
        },
      });
      return null;
    case "call": {
      const opts = mediaOptions(cmd);
      const inviter = new Inviter(ua, target(cmd.target), opts);
      reinviteOptions(inviter, cmd);
      const id = track(inviter, "outgoing");
      emit("calling", { call: id, target: inviter.remoteIdentity.uri.toString(), callId: inviter.request.callId });
      await inviter.invite({ requestDelegate: outgoingDelegate(calls.get(id)), ...opts });
      return id;
    }
    case "answer": {
      const c = pick(cmd, (c) => c.direction === "incoming" && c.session.state === SessionState.Initial);
      reinviteOptions(c.session, cmd);
      await c.session.accept(mediaOptions(cmd));
      return c.id;
    }
    case "hangup": {
      const c = pick(cmd);
      const s = c.session;
      if (s.state === SessionState.Established) {
        c.reason = "local_bye";
        await s.bye();
      } else if (c.direction === "outgoing") {
        c.reason = "canceled";
        await s.cancel();
      } else {
        c.reason = "local_reject";
        await s.reject({ statusCode: cmd.code || 486 });
      }
      return c.id;
    }
    case "stats":
      return stats(pick(cmd));
    case "quit":
      await ua.stop();
      emit("stopped");
      return null;
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

globalThis.sipua = { run, config: cfg };
addEventListener("unhandledrejection", (e) => emit("error", { error: `unhandled: ${e.reason?.message || e.reason}` }));

ua.start()
  .then(() => emit("ready", { lib: "sip.js", version: "0.21.2", user: cfg.user, server: cfg.server, sinceNavigation: Math.round(performance.now()), userAgent: navigator.userAgent }))
  .catch((e) => emit("error", { error: `start: ${e.message || e}` }));
