// sipjs-peer.mjs: a SIP.js 0.21.2 user agent in Node, driven by JSON
// commands on stdin and reporting JSON events on stdout, one per line (the
// protocol is described in interop/node/README.md). It has no media: a
// session description handler offers a fixed SDP and accepts any answer.
//
//   node sipjs-peer.mjs --server ws://127.0.0.1:PORT/ --user alice \
//        --password alice-secret --domain sipua.test

import { WebSocket } from "ws";
import {
  Inviter,
  Messager,
  Publisher,
  Registerer,
  RegistererState,
  SessionState,
  Subscriber,
  SubscriptionState,
  UserAgent,
} from "sip.js";
import { readFileSync } from "node:fs";
import { commands, config, emit, exitSoon, fixedSDP, log, sessionId } from "./common.mjs";

// SIP.js opens its WebSocket with the global constructor, which Node 20 lacks.
globalThis.WebSocket = WebSocket;

const cfg = config();
// The package's own version (lib/version.js of 0.21.2 still says 0.21.1).
const libVersion = JSON.parse(readFileSync(new URL("./node_modules/sip.js/package.json", import.meta.url))).version;

// A session description handler without WebRTC: it offers and answers with
// a fixed audio SDP and accepts whatever the other side sends.
class FixedDescriptionHandler {
  constructor() {
    this.id = sessionId();
    this.version = 0;
    this.remote = undefined;
  }
  close() {}
  getDescription() {
    this.version++;
    return Promise.resolve({ body: fixedSDP(this.id, this.version, cfg.rtpPort), contentType: "application/sdp" });
  }
  hasDescription(contentType) {
    return contentType === "application/sdp";
  }
  rollbackDescription() {
    return Promise.resolve();
  }
  setDescription(sdp) {
    this.remote = sdp;
    return Promise.resolve();
  }
  sendDtmf() {
    return false;
  }
}

const calls = new Map(); // call id ("c1", "c2", ...) -> { session, direction, reason }
let callCounter = 0;

const ua = new UserAgent({
  uri: UserAgent.makeURI(`sip:${cfg.user}@${cfg.domain}`),
  authorizationUsername: cfg.user,
  authorizationPassword: cfg.password,
  displayName: cfg.display || undefined,
  userAgentString: `sipua-interop SIP.js/${libVersion}`,
  transportOptions: { server: cfg.server, traceSip: true },
  sessionDescriptionHandlerFactory: () => new FixedDescriptionHandler(),
  // Only used by SIP.js's own WebRTC handler; set anyway so that no public
  // STUN server is ever contacted.
  sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: { iceServers: [] } },
  logBuiltinEnabled: false,
  logLevel: "log",
  logConnector: (level, category, label, content) => log(`${level} ${category}${label ? " " + label : ""}: ${content}`),
  delegate: {
    onConnect: () => log("transport connected"),
    onDisconnect: (error) => emit("disconnected", { error: error ? String(error.message || error) : "" }),
    onInvite: (invitation) => {
      const id = track(invitation, "incoming");
      const req = invitation.request;
      emit("invite", {
        call: id,
        from: invitation.remoteIdentity.uri.toString(),
        to: invitation.localIdentity.uri.toString(),
        display: invitation.remoteIdentity.displayName || "",
        callId: req.callId,
      });
    },
    onMessage: (message) => {
      const req = message.request;
      message.accept();
      emit("message", {
        from: req.from.uri.toString(),
        body: req.body || "",
        contentType: req.getHeader("content-type") || "",
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
    onInfo: (info) => {
      const req = info.request;
      info.accept();
      emit("info", { call: id, contentType: req.getHeader("content-type") || "", body: req.body || "" });
    },
    onInvite: (request, response, statusCode) =>
      emit("reinvite", { call: id, code: statusCode, direction: sdpDirection(request.body || "") }),
    onMessage: (message) => {
      const req = message.request;
      message.accept();
      emit("message", { call: id, from: req.from.uri.toString(), body: req.body || "", contentType: req.getHeader("content-type") || "" });
    },
    onRefer: (referral) => onRefer(call, referral),
  };
  session.stateChange.addListener((state) => {
    if (state === SessionState.Established) emit("accepted", { call: id });
    if (state === SessionState.Terminated) {
      calls.delete(id);
      // SIP.js changes the state before it calls the request delegate
      // (onReject sets the reason): report once that has run.
      setImmediate(() => emit("terminated", { call: id, reason: call.reason || "terminated" }));
    }
  });
  return id;
}

// An incoming REFER is accepted (202) and, unless --no-follow-refer, followed
// with a new call to the Refer-To target; SIP.js then reports its progress to
// the referrer with NOTIFY.
function onRefer(call, referral) {
  const target = referral.referTo.uri.toString();
  emit("refer", { call: call.id, target });
  referral
    .accept()
    .then(() => {
      if (!cfg.followRefer) return;
      const inviter = referral.makeInviter();
      const id = track(inviter, "outgoing");
      emit("calling", { call: id, target, referredBy: call.id });
      return inviter.invite({ requestDelegate: outgoingDelegate(calls.get(id)) });
    })
    .catch((e) => emit("error", { cmd: "refer", error: String(e.message || e) }));
}

function outgoingDelegate(call) {
  return {
    onProgress: (r) => emit("progress", { call: call.id, code: r.message.statusCode }),
    onReject: (r) => {
      // A 487 after our own CANCEL keeps the reason "canceled".
      call.reason = call.reason || "rejected";
      emit("rejected", { call: call.id, code: r.message.statusCode, reason: r.message.reasonPhrase });
    },
  };
}

// pick returns the call a command is about: the one named by cmd.call, or
// the most recent one that passes filter.
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
  const t = cmd.target && !cmd.target.includes("@") && !cmd.target.startsWith("sip")
    ? `sip:${cmd.target}@${cfg.domain}`
    : cmd.target;
  const uri = UserAgent.makeURI(t || "");
  if (!uri) throw new Error(`bad target ${cmd.target}`);
  return uri;
}

function resultDelegate(what, call) {
  const extra = call ? { call: call.id } : {};
  return {
    onAccept: (r) => emit(`${what}_sent`, { ...extra, code: r.message.statusCode }),
    onReject: (r) => emit(`${what}_failed`, { ...extra, code: r.message.statusCode, reason: r.message.reasonPhrase }),
  };
}

let quitting = false;
async function quit() {
  if (quitting) return;
  quitting = true;
  exitSoon(0);
  try {
    await ua.stop(); // graceful: ends sessions, unregisters
  } catch (e) {
    log("stop:", e.message);
  }
  emit("stopped");
  process.exit(0);
}

const subscriptions = new Map(); // "s1", ... -> Subscriber
let subCounter = 0;
let publisher;

async function handle(cmd) {
  switch (cmd.cmd) {
    case "subscribe": {
      // {"cmd":"subscribe","target":"sip:alice@…","event":"presence"}:
      // each NOTIFY is reported as {"event":"notify_sub","sub":…,"body":…,
      // "contentType":…,"state":Subscription-State}.
      const id = `s${++subCounter}`;
      const event = cmd.event || "presence";
      const sub = new Subscriber(ua, target(cmd), event, { expires: 300 });
      subscriptions.set(id, sub);
      sub.delegate = {
        onNotify: (n) => {
          n.accept();
          const req = n.request;
          emit("notify_sub", {
            sub: id,
            package: event,
            body: req.body || "",
            contentType: req.getHeader("content-type") || "",
            state: req.getHeader("subscription-state") || "",
          });
        },
      };
      sub.stateChange.addListener((st) => {
        if (st === SubscriptionState.Subscribed) emit("subscribed", { sub: id });
        if (st === SubscriptionState.Terminated) emit("unsubscribed", { sub: id });
      });
      emit("subscribing", { sub: id, target: String(target(cmd)), package: event });
      await sub.subscribe();
      return;
    }
    case "unsubscribe": {
      const sub = subscriptions.get(cmd.sub);
      if (!sub) throw new Error(`no subscription ${cmd.sub}`);
      await sub.unsubscribe();
      return;
    }
    case "publish": {
      // {"cmd":"publish","target":"sip:me@…","event":"presence",
      //  "contentType":"application/pidf+xml","body":"…"}
      if (!publisher) {
        publisher = new Publisher(ua, target(cmd), cmd.event || "presence", {
          expires: 300,
          contentType: cmd.contentType || "application/pidf+xml",
        });
        publisher.stateChange.addListener((st) => emit("publish_state", { state: String(st) }));
      }
      await publisher.publish(cmd.body);
      return;
    }
    case "register":
      await registerer.register({ requestDelegate: {
        onReject: (r) => emit("register_failed", { code: r.message.statusCode, reason: r.message.reasonPhrase }),
      } });
      return;
    case "unregister":
      await registerer.unregister();
      return;
    case "call": {
      const inviter = new Inviter(ua, target(cmd), { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
      const id = track(inviter, "outgoing");
      emit("calling", { call: id, target: inviter.remoteIdentity.uri.toString(), callId: inviter.request.callId });
      await inviter.invite({ requestDelegate: outgoingDelegate(calls.get(id)) });
      return;
    }
    case "answer": {
      const c = pick(cmd, (c) => c.direction === "incoming" && c.session.state === SessionState.Initial);
      await c.session.accept();
      return;
    }
    case "reject": {
      const c = pick(cmd, (c) => c.direction === "incoming" && c.session.state === SessionState.Initial);
      c.reason = "local_reject";
      await c.session.reject({ statusCode: cmd.code || 486 });
      return;
    }
    case "hangup": {
      const c = pick(cmd);
      const s = c.session;
      if (s.state === SessionState.Established) {
        c.reason = "local_bye";
        await s.bye({ requestDelegate: resultDelegate("bye", c) });
      } else if (c.direction === "outgoing") {
        c.reason = "canceled";
        await s.cancel();
      } else {
        c.reason = "local_reject";
        await s.reject({ statusCode: cmd.code || 486 });
      }
      return;
    }
    case "message":
      if (cmd.call) {
        const c = pick(cmd);
        await c.session.message({
          requestDelegate: resultDelegate("message", c),
          requestOptions: { body: { contentDisposition: "render", contentType: cmd.contentType || "text/plain", content: cmd.body || "" } },
        });
        return;
      }
      await new Messager(ua, target(cmd), cmd.body || "", cmd.contentType || "text/plain")
        .message({ requestDelegate: resultDelegate("message") });
      return;
    case "info": {
      const c = pick(cmd, (c) => c.session.state === SessionState.Established);
      await c.session.info({
        requestDelegate: resultDelegate("info", c),
        requestOptions: { body: {
          contentDisposition: "render",
          contentType: cmd.contentType || "application/dtmf-relay",
          content: cmd.body ?? "Signal=5\r\nDuration=160\r\n",
        } },
      });
      return;
    }
    case "refer": {
      const c = pick(cmd, (c) => c.session.state === SessionState.Established);
      await c.session.refer(target(cmd), {
        requestDelegate: resultDelegate("refer", c),
        onNotify: (n) => {
          n.accept();
          emit("notify", { call: c.id, body: (n.request.body || "").trim() });
        },
      });
      return;
    }
    case "reinvite": {
      const c = pick(cmd, (c) => c.session.state === SessionState.Established);
      // While the other side's re-INVITE is still waiting for its ACK SIP.js
      // refuses to start one (RFC 3261 14.1): try again for a while.
      for (let tries = 0; ; tries++) {
        try {
          await c.session.invite({ requestDelegate: resultDelegate("reinvite", c) });
          return;
        } catch (e) {
          if (tries >= 60 || !/ongoing|pending/i.test(String(e.message))) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    case "quit":
      await quit();
      return;
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

process.on("SIGTERM", () => quit());
process.on("unhandledRejection", (e) => emit("error", { error: `unhandled: ${e && e.message ? e.message : e}` }));

ua.start()
  .then(() => {
    emit("ready", { lib: "sip.js", version: libVersion, user: cfg.user, server: cfg.server });
    commands(handle, quit);
  })
  .catch((e) => {
    emit("error", { error: `start: ${e.message || e}` });
    process.exit(1);
  });

// sdpDirection returns the direction attribute of an SDP offer (the first
// one found), "sendrecv" when none is given (RFC 3264 §5.1).
function sdpDirection(sdp) {
  const m = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(sdp);
  return m ? m[1] : "sendrecv";
}
