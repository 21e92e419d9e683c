// Shared plumbing of the sipua interop peer drivers (sipjs-peer.mjs,
// jssip-peer.mjs): configuration, the JSON-lines event/command protocol and
// the fixed SDP the media-less peers offer and answer with.
//
// Protocol (see interop/node/README.md):
//   stdout: one JSON object per line, always with "event" and "t" (ms since
//           the peer started); nothing else is written to stdout.
//   stdin:  one JSON command per line, always with "cmd".
//   stderr: free-form log, including the library's SIP trace.

import { createInterface } from "node:readline";
import { format, parseArgs } from "node:util";

const started = Date.now();

// stdout carries the events only: whatever a library prints with console.*
// (JsSIP's debug output goes to console.info) is sent to stderr instead.
for (const name of ["log", "info", "debug", "warn", "error", "trace"]) {
  console[name] = (...args) => process.stderr.write(format(...args) + "\n");
}

/**
 * Reads the configuration from the command line, falling back to the
 * SIPUA_PEER_* environment variables.
 */
export function config() {
  const { values } = parseArgs({
    options: {
      server: { type: "string" }, // ws://127.0.0.1:PORT/ or wss://...
      user: { type: "string" },
      password: { type: "string" },
      domain: { type: "string" },
      display: { type: "string" },
      "rtp-port": { type: "string" },
      "no-follow-refer": { type: "boolean" },
      "session-timers": { type: "string" },
    },
    strict: true,
  });
  const env = process.env;
  const cfg = {
    server: values.server ?? env.SIPUA_PEER_SERVER,
    user: values.user ?? env.SIPUA_PEER_USER,
    password: values.password ?? env.SIPUA_PEER_PASSWORD ?? "",
    domain: values.domain ?? env.SIPUA_PEER_DOMAIN ?? "sipua.test",
    display: values.display ?? env.SIPUA_PEER_DISPLAY ?? "",
    rtpPort: Number(values["rtp-port"] ?? env.SIPUA_PEER_RTP_PORT ?? 40000),
    followRefer: !(values["no-follow-refer"] ?? env.SIPUA_PEER_NO_FOLLOW_REFER === "1"),
    // Session timers (RFC 4028) in seconds; 0: off. JsSIP only.
    sessionTimers: Number(values["session-timers"] ?? env.SIPUA_PEER_SESSION_TIMERS ?? 0),
  };
  if (!cfg.server || !cfg.user) {
    process.stderr.write("usage: --server ws://HOST:PORT/ --user NAME [--password PW] [--domain D] " +
      "[--display NAME] [--rtp-port N] [--no-follow-refer] [--session-timers SECONDS]\n");
    process.exit(2);
  }
  return cfg;
}

/** Writes one event line to stdout. */
export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, t: Date.now() - started, ...fields }) + "\n");
}

/** Writes a line to the log (stderr). */
export function log(...parts) {
  process.stderr.write(`[${Date.now() - started}ms] ${parts.join(" ")}\n`);
}

/**
 * Calls handle(cmd) for every JSON command line on stdin, one at a time and
 * in order; a command that throws or rejects is reported as an "error"
 * event. onEnd runs when stdin closes.
 */
export function commands(handle, onEnd) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let queue = Promise.resolve();
  rl.on("line", (line) => {
    line = line.trim();
    if (!line) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      emit("error", { error: `bad command line: ${e.message}`, line });
      return;
    }
    log("command", line);
    queue = queue
      .then(() => handle(cmd))
      .catch((e) => emit("error", { cmd: cmd.cmd, error: String(e && e.message ? e.message : e) }));
  });
  rl.on("close", () => {
    queue = queue.then(onEnd);
  });
}

/**
 * Returns an SDP body with one audio stream (PCMU and telephone-event) on
 * 127.0.0.1; version counts the offers/answers of a session (RFC 4566 o=).
 * No media is ever sent: the peers only exercise signalling.
 */
export function fixedSDP(sessionId, version, rtpPort) {
  return [
    "v=0",
    `o=- ${sessionId} ${version} IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    `m=audio ${rtpPort} RTP/AVP 0 101`,
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "",
  ].join("\r\n");
}

/** Returns a random SDP session id. */
export function sessionId() {
  return String(Math.floor(Math.random() * 1e9) + 1);
}

/** Stops the process after ms even if something hangs on shutdown. */
export function exitSoon(code, ms = 3000) {
  setTimeout(() => process.exit(code), ms).unref();
}
