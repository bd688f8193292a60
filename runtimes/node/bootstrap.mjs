// Hyac's JavaScript worker (Node.js 20+, and Deno through its node: modules): loads one
// function and serves its invocations over the channel of docs/protocol.md.
//
// Started inside the sandbox as `node RUNTIME_DIR/bootstrap.mjs` (or `deno run ...`).
// The channel is the unix socket at HYAC_CHANNEL_PATH when set, else the inherited
// socket on fd HYAC_CHANNEL_FD (default 3). No dependencies.
//
// Exit codes: 0 after `shutdown` or when the channel closes, 1 after `init_error`,
// 2 when the agent breaks the protocol.

import { AsyncLocalStorage } from "node:async_hooks";
import { Buffer } from "node:buffer";
import net from "node:net";
import path from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { format } from "node:util";

import * as hyac from "./hyac_context.mjs";

// The worker protocol this bootstrap speaks: hyac_common/protocol.py's, held to it by a test.
const PROTOCOL_VERSION = "1.0";
const MAX_FRAME = 64 * 1024 * 1024;
const MAX_LOG_LINE = 256 * 1024;
const EXIT_OK = 0, EXIT_INIT_ERROR = 1, EXIT_PROTOCOL_ERROR = 2;
const currentRequest = new AsyncLocalStorage();
const rawStderr = process.stderr.write.bind(process.stderr);

function die(code, reason) {
  if (reason) rawStderr(`hyac worker: ${reason}\n`);
  process.exit(code);
}

class Channel {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.callIds = 0;
    this.pending = new Map();
    this.onFrame = () => {};
    this.formatError = (err) => String(err && err.stack || err);
    socket.on("data", (chunk) => this._receive(chunk));
    socket.on("end", () => die(EXIT_OK));
    socket.on("close", () => die(EXIT_OK));
    socket.on("error", (err) => die(EXIT_OK, `channel failed: ${err.message}`));
  }

  _receive(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length > MAX_FRAME) die(EXIT_PROTOCOL_ERROR, `protocol error: frame of ${length} bytes`);
      if (this.buffer.length < 4 + length) return;
      const payload = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      let message;
      try {
        message = JSON.parse(payload.toString("utf-8"));
      } catch (err) {
        die(EXIT_PROTOCOL_ERROR, `protocol error: frame is not JSON: ${err.message}`);
      }
      if (!message || typeof message.type !== "string") {
        die(EXIT_PROTOCOL_ERROR, "protocol error: frame without a string 'type'");
      }
      if (message.type === "hostcall_result") this._resolve(message);
      else this.onFrame(message);
    }
  }

  send(message) {
    const data = Buffer.from(JSON.stringify(message), "utf-8");
    if (data.length > MAX_FRAME) throw new RangeError(`message of ${data.length} bytes exceeds 64 MiB`);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(data.length, 0);
    this.socket.write(Buffer.concat([header, data]));
  }

  call(requestId, op, args) {
    const call = ++this.callIds;
    return new Promise((resolve, reject) => {
      this.pending.set(call, { resolve, reject });
      try {
        this.send({ type: "hostcall", id: requestId, call, op, args });
      } catch (err) {
        this.pending.delete(call);
        reject(err);
      }
    });
  }

  _resolve(message) {
    const waiter = this.pending.get(message.call);
    if (!waiter) return;
    this.pending.delete(message.call);
    if (message.ok) waiter.resolve(message.value ?? null);
    else waiter.reject(hyac.hostCallError(message.error));
  }

  log(requestId, stream, text, level) {
    if (text.length > MAX_LOG_LINE) text = text.slice(0, MAX_LOG_LINE) + " ...[truncated]";
    const frame = { type: "log", id: requestId ?? null, stream };
    if (level) frame.level = level;
    frame.message = text;
    this.send(frame);
  }
}

/** stdout/stderr and console.* become log frames, split into lines per request. */
class Output {
  constructor(channel) {
    this.channel = channel;
    this.partial = new Map();
  }
  write(stream, text) {
    const id = currentRequest.getStore() ?? null;
    const key = `${stream}\u0000${id}`;
    const lines = ((this.partial.get(key) ?? "") + text).split("\n");
    const rest = lines.pop();
    if (rest) this.partial.set(key, rest); else this.partial.delete(key);
    for (const line of lines) this.channel.log(id, stream, line);
  }
  end(id) {
    for (const stream of ["stdout", "stderr"]) {
      const key = `${stream}\u0000${id ?? null}`;
      const rest = this.partial.get(key);
      if (rest) {
        this.partial.delete(key);
        this.channel.log(id ?? null, stream, rest);
      }
    }
  }
  install() {
    const out = (text) => this.write("stdout", text);
    const err = (text) => this.write("stderr", text);
    console.log = console.info = console.debug = (...a) => out(format(...a) + "\n");
    console.warn = console.error = console.trace = (...a) => err(format(...a) + "\n");
    process.stdout.write = (chunk) => { out(String(chunk)); return true; };
    process.stderr.write = (chunk) => { err(String(chunk)); return true; };
  }
}

/** Stacks as the user should see them: their own frames, paths relative to the code. */
class UserErrors {
  constructor(codeDir) {
    this.codeDir = codeDir;
    this.codeUrl = pathToFileURL(codeDir).href;
  }
  format(err) {
    if (!(err instanceof Error)) return `Uncaught ${typeof err}: ${String(err)}`;
    const lines = String(err.stack || `${err.name}: ${err.message}`).split("\n");
    const kept = [];
    let header = true;
    for (const line of lines) {
      const frame = /^\s+at /.test(line);
      if (header && !frame) { kept.push(this.relative(line)); continue; }
      header = false;
      if (frame && (line.includes(this.codeUrl + "/") || line.includes(this.codeDir + "/"))) {
        kept.push(this.relative(line));
      }
    }
    return kept.join("\n");
  }
  relative(line) {
    return line.split(this.codeUrl + "/").join("").split(this.codeDir + "/").join("");
  }
  describe(err) {
    const type = err instanceof Error ? (err.name || err.constructor?.name || "Error") : typeof err;
    const message = err instanceof Error ? err.message : String(err);
    return { type, message: this.relative(message), traceback: this.format(err) };
  }
}

class Worker {
  constructor(channel, init) {
    const fn = init.function, entry = init.entry;
    const codeDir = init.code_dir || process.env.HYAC_CODE_DIR;
    if (!fn || typeof fn !== "object" || typeof entry !== "string" || !entry) {
      throw new TypeError("init needs a 'function' object and an 'entry' path");
    }
    if (typeof codeDir !== "string") throw new TypeError("init needs a 'code_dir'");
    this.channel = channel;
    this.function = fn;
    this.codeDir = path.resolve(codeDir);
    this.entry = path.normalize(entry);
    this.handlerName = String(init.handler || "main");
    this.env = Object.fromEntries(Object.entries(init.env || {}).map(([k, v]) => [k, String(v)]));
    this.timeout = Number(init.timeout || 30);
    this.errors = new UserErrors(this.codeDir);
    channel.formatError = (err) => this.errors.format(err);
    this.output = new Output(channel);
    this.output.install();
    this.inFlight = 0;
    this.stopping = false;
  }

  async load() {
    try {
      Object.assign(process.env, this.env);
      try { process.chdir(this.codeDir); } catch { /* Deno without --allow-read=. */ }
      const module = await import(pathToFileURL(path.join(this.codeDir, this.entry)).href);
      let handler = module[this.handlerName];
      if (handler === undefined && module.default !== undefined) {
        handler = typeof module.default === "function" ? module.default : module.default[this.handlerName];
      }
      if (handler === undefined) {
        throw new ReferenceError(`${this.entry} exports no ${this.handlerName}(context) function`);
      }
      if (typeof handler !== "function") {
        throw new TypeError(`${this.entry}: ${this.handlerName} must be a function taking context`);
      }
      this.handler = handler;
    } catch (err) {
      this.output.end(null);
      this.channel.send({ type: "init_error", protocol: PROTOCOL_VERSION, error: this.errors.describe(err) });
      return false;
    }
    this.output.end(null);
    const version = globalThis.Deno?.version?.deno ?? process.versions.node;
    this.channel.send({ type: "ready", protocol: PROTOCOL_VERSION, pid: process.pid, runtime_version: version });
    return true;
  }

  onFrame(message) {
    if (message.type === "invoke") this.invoke(message);
    else if (message.type === "shutdown") {
      this.stopping = true;
      if (this.inFlight === 0) die(EXIT_OK);
    } else die(EXIT_PROTOCOL_ERROR, `protocol error: unexpected frame type ${message.type}`);
  }

  context(id, message) {
    const request = message.request || {};
    const fn = this.function;
    const task = message.task ? new hyac.Task(this.channel, id, String(message.task.id),
                                              Number(message.task.attempt)) : null;
    return new hyac.FunctionContext({
      request: new hyac.Request({
        method: request.method, path: request.path, query: request.query || {},
        headers: request.headers || {}, body: Buffer.from(request.body_b64 || "", "base64"),
        clientIp: request.client_ip || "", id,
      }),
      logger: new hyac.Logger(this.channel, id),
      env: this.env,
      kv: new hyac.KV(this.channel, id),
      storage: new hyac.Storage(this.channel, id),
      mail: new hyac.Mail(this.channel, id),
      function: new hyac.FunctionInfo({
        tenant: String(fn.tenant ?? "default"), name: String(fn.name ?? ""),
        version: Number(fn.version ?? 0), sha256: String(fn.sha256 ?? ""),
        runtime: String(fn.runtime ?? ""), requestId: id,
      }),
      deadline: Number(message.deadline ?? Date.now() / 1000 + this.timeout),
      task,
      host: this.channel,
    });
  }

  invoke(message) {
    const id = message.id;
    if (typeof id !== "string" || !id) die(EXIT_PROTOCOL_ERROR, "protocol error: invoke without an id");
    this.inFlight += 1;
    currentRequest.run(id, async () => {
      let result;
      try {
        const value = await this.handler(this.context(id, message));
        const [status, headers, body] = await hyac.toWireResponse(value);
        result = { type: "result", id, ok: true,
                   response: { status, headers, body_b64: body.toString("base64") } };
      } catch (err) {
        result = { type: "result", id, ok: false, error: this.errors.describe(err) };
      }
      this.output.end(id);
      try {
        this.channel.send(result);
      } catch (err) {
        // The response cannot be framed: the code says so (the agent answers output_too_large).
        this.channel.send({ type: "result", id, ok: false,
                            error: { type: "RangeError", message: `response too large: ${err.message}`,
                                     traceback: "", code: "output_too_large" } });
      }
      this.inFlight -= 1;
      if (this.stopping && this.inFlight === 0) die(EXIT_OK);
    });
  }
}

function openChannel() {
  const channelPath = process.env.HYAC_CHANNEL_PATH || "";
  if (channelPath) return net.createConnection({ path: channelPath });
  const fd = Number(process.env.HYAC_CHANNEL_FD || "3");
  return new net.Socket({ fd, readable: true, writable: true });
}

function main() {
  let socket;
  try {
    socket = openChannel();
  } catch (err) {
    die(EXIT_PROTOCOL_ERROR, `no channel socket: ${err.message}`);
  }
  const channel = new Channel(socket);
  let worker = null;
  channel.onFrame = (message) => {
    if (worker !== null) return worker.onFrame(message);
    if (message.type !== "init") die(EXIT_PROTOCOL_ERROR, `protocol error: expected init, got ${message.type}`);
    try {
      worker = new Worker(channel, message);
    } catch (err) {
      die(EXIT_PROTOCOL_ERROR, `protocol error: ${err.message}`);
    }
    const ready = worker;
    const queued = [];
    channel.onFrame = (m) => queued.push(m);
    ready.load().then((ok) => {
      if (!ok) {
        socket.end(() => die(EXIT_INIT_ERROR));
        return;
      }
      channel.onFrame = (m) => ready.onFrame(m);
      for (const m of queued) ready.onFrame(m);
    });
  };
  process.on("unhandledRejection", (err) => {
    const id = currentRequest.getStore() ?? null;
    channel.log(id, "stderr", `unhandled rejection: ${channel.formatError(err)}`);
  });
}

main();
