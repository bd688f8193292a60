// The context a Hyac function receives in JavaScript/TypeScript (Node.js and Deno).
//
// The same members as the Python runtime's hyac_context.py, in JavaScript spelling:
// host calls return promises (`await context.kv.get("k")`). hyac_context.d.ts beside
// this file declares these types for editors; `hyac init --runtime node20` and
// `hyac stubs` copy it into the project's typings/.

import { Buffer } from "node:buffer";
import { format } from "node:util";

/** A host call (context.kv …) was refused or failed on the host side. */
export class HostCallError extends Error {
  constructor(code, message = "", details = {}) {
    super(message ? `${code}: ${message}` : code);
    this.name = "HostCallError";
    this.code = code;
    this.hostMessage = message;
    this.details = details;
  }
}

/** The function called with context.invoke() threw; its code is "function_error".
 * Carries what the callee threw (errorType, hostMessage, traceback) and its request id. */
export class InvocationError extends HostCallError {
  constructor(fn, errorType, message = "", traceback = "", requestId = "") {
    super("function_error", message);
    this.name = "InvocationError";
    this.message = `function ${JSON.stringify(fn)} raised ${errorType}` + (message ? `: ${message}` : "");
    this.function = fn;
    this.errorType = errorType;
    this.traceback = traceback;
    this.requestId = requestId;
  }
}

/** The error for a host call's `error` object: InvocationError for a "function_error". */
export function hostCallError(error) {
  const e = error && typeof error === "object" ? error : {};
  const code = String(e.code ?? "error");
  const message = String(e.message ?? "");
  if (code === "function_error") {
    return new InvocationError(String(e.function ?? ""), String(e.type || "Error"), message,
                               String(e.traceback ?? ""), String(e.request_id ?? ""));
  }
  const { code: _code, message: _message, ...details } = e;
  return new HostCallError(code, message, details);
}

/** What a function called with context.invoke() answered (any status it returned). */
export class InvokeResponse {
  constructor({ status = 200, headers = {}, body = Buffer.alloc(0), function: fn = "", version = 0,
                requestId = "" } = {}) {
    this.status = status;
    this.headers = { ...headers };
    this.body = body;
    this.ok = status < 400;
    this.function = fn;
    this.version = version;
    this.request_id = requestId;
    this.requestId = requestId;
  }

  /** The body parsed as JSON; an empty body gives null. */
  json() {
    const text = this.text();
    if (!text.trim()) return null;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new SyntaxError(`the response of ${JSON.stringify(this.function)} is not valid JSON: ${err.message}`);
    }
  }

  /** The body decoded as UTF-8 text. */
  text() {
    return Buffer.from(this.body).toString("utf-8");
  }
}

/** The HTTP request that triggered this invocation. */
export class Request {
  constructor({ method = "GET", path = "/", query = {}, headers = {}, body = Buffer.alloc(0),
                clientIp = "", id = "" } = {}) {
    this.method = String(method).toUpperCase();
    this.path = path;
    this.query = { ...query };
    this.headers = Object.fromEntries(
      Object.entries(headers).map(([k, v]) => [String(k).toLowerCase(), String(v)]));
    this.body = body;
    this.client_ip = clientIp;
    this.clientIp = clientIp;
    this.id = id;
  }

  /** The body parsed as JSON; an empty body gives null. */
  json() {
    const text = this.text();
    if (!text.trim()) return null;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new SyntaxError(`request body is not valid JSON: ${err.message}`);
    }
  }

  /** The body decoded as UTF-8 text. */
  text() {
    return Buffer.from(this.body).toString("utf-8");
  }
}

/** An HTTP response with an explicit status and headers.
 *
 * `new Response(201, {"x-a": "b"}, {made: true})` or `new Response({status, headers, body})`;
 * body may be a string, a Uint8Array/Buffer, a plain object or array (JSON), or null. A
 * header's value may be an array: `{"set-cookie": ["a=1", "b=2"]}` sends each cookie as a
 * Set-Cookie header of its own; other headers' values are joined by ", ". */
export class Response {
  constructor(status = 200, headers = {}, body = null) {
    if (status !== null && typeof status === "object") {
      ({ status = 200, headers = {}, body = null } = status);
    }
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new TypeError(`Response status must be an integer between 100 and 599, not ${status}`);
    }
    this.status = status;
    this.headers = Object.fromEntries(Object.entries(headers || {}).map(([k, v]) => [k, headerValue(k, v)]));
    this.body = body;
  }
}

/** A response header's value as it goes on the wire: an array gives one value per item,
 * Set-Cookie's kept apart by a newline (no header value can hold one, and the agent sends
 * each as a header of its own), any other header's joined by ", ". */
function headerValue(name, value) {
  if (!Array.isArray(value)) return String(value);
  return value.map(String).join(String(name).toLowerCase() === "set-cookie" ? "\n" : ", ");
}

/** Log lines for this invocation, tagged with its request id and level.
 * Messages are formatted like console.log: `logger.info("hi %s", name)`. */
export class Logger {
  constructor(host, requestId) {
    this._host = host;
    this._requestId = requestId;
  }
  debug(msg, ...args) { this._emit("DEBUG", msg, args); }
  info(msg, ...args) { this._emit("INFO", msg, args); }
  warning(msg, ...args) { this._emit("WARNING", msg, args); }
  warn(msg, ...args) { this._emit("WARNING", msg, args); }
  error(msg, ...args) { this._emit("ERROR", msg, args); }
  critical(msg, ...args) { this._emit("CRITICAL", msg, args); }
  /** ERROR level, followed by the stack of `error` (the user's own frames). */
  exception(error, msg = "", ...args) {
    const text = (msg ? format(msg, ...args) + "\n" : "") + this._host.formatError(error);
    this._emit("ERROR", text, []);
  }
  _emit(level, msg, args) {
    const text = args.length ? format(msg, ...args) : String(msg);
    for (const line of text.split("\n")) this._host.log(this._requestId, "logger", line, level);
  }
}

/** The tenant's key-value store: string keys, JSON values. Every method returns a promise. */
export class KV {
  constructor(host, requestId) {
    this._host = host;
    this._requestId = requestId;
  }
  async get(key, fallback = null) {
    const value = await this._host.call(this._requestId, "kv.get", { key: checkKey(key) });
    return value === null || value === undefined ? fallback : value;
  }
  async set(key, value) {
    checkJson(value, "kv values");
    await this._host.call(this._requestId, "kv.set", { key: checkKey(key), value });
  }
  async delete(key) {
    return Boolean(await this._host.call(this._requestId, "kv.delete", { key: checkKey(key) }));
  }
  async list(prefix = "", limit = 1000) {
    return await this._host.call(this._requestId, "kv.list", { prefix: String(prefix), limit });
  }
}

/** The tenant's secrets (`hyac secret set NAME`), read by name. Every method returns a
 * promise; the values are redacted (***) from the function's log lines and errors. */
export class Secrets {
  constructor(host, requestId) {
    this._host = host;
    this._requestId = requestId;
  }
  async get(name, fallback = null) {
    const value = await this._host.call(this._requestId, "secrets.get", { name: String(name) });
    return value === null || value === undefined ? fallback : String(value);
  }
  async list() {
    return await this._host.call(this._requestId, "secrets.list", {});
  }
}

/** The tenant's object storage: bytes under string keys, "/" between folders. Every
 * method returns a promise; data comes back as a Buffer (a Uint8Array). */
export class Storage {
  constructor(host, requestId) {
    this._host = host;
    this._requestId = requestId;
  }
  /** Store `data` (a Uint8Array, or a string stored as UTF-8) under `key`; resolves to its info. */
  async put(key, data, contentType = null) {
    let bytes = data;
    if (typeof data === "string") {
      bytes = Buffer.from(data, "utf-8");
      contentType ??= "text/plain; charset=utf-8";
    } else if (data instanceof ArrayBuffer) {
      bytes = Buffer.from(data);
    } else if (!(data instanceof Uint8Array)) {
      throw new TypeError(`storage data must be a Uint8Array or a string, not ${typeof data}`);
    }
    const args = { key: checkKey(key, "storage"), data_b64: Buffer.from(bytes).toString("base64"),
                   content_type: contentType };
    return objectInfo(await this._host.call(this._requestId, "storage.put", args));
  }
  /** The bytes stored under `key`, or null. */
  async get(key) {
    const value = await this._host.call(this._requestId, "storage.get", { key: checkKey(key, "storage") });
    return value ? Buffer.from(value.data_b64, "base64") : null;
  }
  /** What is known of the object under `key` (not its bytes), or null. */
  async stat(key) {
    const value = await this._host.call(this._requestId, "storage.stat", { key: checkKey(key, "storage") });
    return value ? objectInfo(value) : null;
  }
  /** Delete the object under `key`; true if it existed. */
  async delete(key) {
    return Boolean(await this._host.call(this._requestId, "storage.delete", { key: checkKey(key, "storage") }));
  }
  /** Up to `limit` (at most 1000) objects whose keys start with `prefix`, in key order;
   * for the next page pass the last key you got as `startAfter`. */
  async list(prefix = "", limit = 1000, startAfter = null) {
    const args = { prefix: String(prefix), limit };
    if (startAfter !== null && startAfter !== undefined) args.start_after = String(startAfter);
    const values = await this._host.call(this._requestId, "storage.list", args);
    return values.map(objectInfo);
  }
}

/** Email, sent by the agent through its SMTP server (the function needs no network).
 * Messages come from the agent's sender; a function chooses at most the display name. */
export class Mail {
  constructor(host, requestId) {
    this._host = host;
    this._requestId = requestId;
  }
  /** Send one message; resolves to its Message-ID once the SMTP server has taken it. */
  async send({ to, subject, text = null, html = null, cc = null, bcc = null, replyTo = null,
               reply_to = null, attachments = [], fromName = null, from_name = null } = {}) {
    if (typeof subject !== "string") throw new TypeError("mail subject must be a string");
    const files = (attachments ?? []).map((a) => {
      const data = a?.content ?? a?.data;
      let bytes;
      if (typeof data === "string") bytes = Buffer.from(data, "utf-8");
      else if (data instanceof Uint8Array || data instanceof ArrayBuffer) bytes = Buffer.from(data);
      else throw new TypeError("a mail attachment's content must be a Uint8Array or a string");
      return { filename: a.filename, content_type: a.contentType ?? a.content_type ?? null,
               data_b64: bytes.toString("base64") };
    });
    const args = { to, subject, text, html, cc, bcc, reply_to: replyTo ?? reply_to,
                   attachments: files, from_name: fromName ?? from_name };
    return String((await this._host.call(this._requestId, "mail.send", args)).message_id);
  }
}

function objectInfo(value) {
  return { key: value.key, size: value.size, content_type: value.content_type,
           contentType: value.content_type, sha256: value.sha256, updated_at: value.updated_at,
           updatedAt: value.updated_at };
}

/** Which function and version is running, and for which request. */
export class FunctionInfo {
  constructor({ tenant = "default", name = "", version = 0, sha256 = "", runtime = "", requestId = "" } = {}) {
    Object.assign(this, { tenant, name, version, sha256, runtime, request_id: requestId,
                          requestId });
  }
}

/** The background task an invocation runs, as context.task (null for plain invocations). */
export class Task {
  constructor(host, requestId, id, attempt) {
    this._host = host;
    this._requestId = requestId;
    this.id = id;
    this.attempt = attempt;
  }
  /** Report how far the task is, 0.0 to 1.0, with an optional short message. */
  async progress(fraction, message = "") {
    if (typeof fraction !== "number" || Number.isNaN(fraction)) {
      throw new TypeError("progress fraction must be a number from 0 to 1");
    }
    const clamped = Math.min(Math.max(fraction, 0), 1);
    await this._host.call(this._requestId, "task.progress", { fraction: clamped, message: String(message) });
  }
}

/** Everything a function can reach; passed as `context` to `main(context)`. */
export class FunctionContext {
  constructor({ request, logger, env, kv, storage = null, mail = null, secrets = null,
                function: info, deadline, task = null, host = null }) {
    this.request = request;
    this.logger = logger;
    this.env = Object.freeze({ ...env });
    this.kv = kv;
    this.storage = storage ?? new Storage(host, info?.request_id);
    this.mail = mail ?? new Mail(host, info?.request_id);
    this.secrets = secrets ?? new Secrets(host, info?.request_id);
    this.function = info;
    this.deadline = deadline;
    this.task = task;
    this.Response = Response;
    this._host = host;
  }

  /** Seconds left before the deadline (never negative). */
  remaining_time() {
    return Math.max(0, this.deadline - Date.now() / 1000);
  }

  remainingTime() {
    return this.remaining_time();
  }

  /** Send `text` to the notification channel `channel` (the tenant's own, or a shared
   * platform channel as "platform/NAME"), with `fields` shown beside it; resolves to the
   * delivery id once the agent has stored it (it sends it with retries). Rejects with
   * HostCallError "not_found", "invalid_input" or "quota_exceeded". */
  async notify(channel, text, fields = {}) {
    if (typeof channel !== "string" || !channel) throw new TypeError("notify needs a channel name");
    if (typeof text !== "string") throw new TypeError("notification text must be a string");
    if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
      throw new TypeError("notification fields must be an object of names and values");
    }
    const args = { channel, text, fields: { ...fields } };
    return String((await this._host.call(this.function.request_id, "notify.send", args)).id);
  }

  /** Queue a background task of `name` (of this tenant); resolves to its task id. */
  async enqueue(name, payload = null, { delay = 0 } = {}) {
    if (typeof name !== "string" || !name) throw new TypeError("enqueue needs a function name");
    if (typeof delay !== "number" || delay < 0) throw new RangeError("enqueue delay must be >= 0");
    checkJson(payload, "task payloads");
    const args = { function: name, payload, delay };
    return String(await this._host.call(this.function.request_id, "task.enqueue", args));
  }

  /** Run function `name` (of this tenant) now; resolves to its InvokeResponse.
   * `payload`: a Uint8Array is sent as it is, anything else as JSON, null as no body.
   * Rejects with InvocationError if the callee threw, HostCallError "not_found" if there
   * is no such function. Calls nest at most 8 deep, within this invocation's time. */
  async invoke(name, payload = null, { method = "POST", path = "/", query = {}, headers = {} } = {}) {
    if (typeof name !== "string" || !name) throw new TypeError("invoke needs a function name");
    if (typeof method !== "string" || !/^[A-Za-z]+$/.test(method)) {
      throw new TypeError(`invoke method must be an HTTP method such as "POST", not ${method}`);
    }
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new TypeError(`invoke path must be a string starting with "/", not ${path}`);
    }
    const sent = Object.fromEntries(
      Object.entries(headers || {}).map(([k, v]) => [String(k).toLowerCase(), String(v)]));
    let body = Buffer.alloc(0);
    if (payload instanceof Uint8Array) {
      body = Buffer.from(payload);
      sent["content-type"] ??= "application/octet-stream";
    } else if (payload !== null && payload !== undefined) {
      checkJson(payload, "invoke payloads");
      body = Buffer.from(JSON.stringify(payload), "utf-8");
      sent["content-type"] ??= "application/json";
    }
    const args = {
      function: name, method: method.toUpperCase(), path,
      query: Object.fromEntries(Object.entries(query || {}).map(([k, v]) => [String(k), String(v)])),
      headers: sent, body_b64: body.toString("base64"),
    };
    const value = (await this._host.call(this.function.request_id, "function.invoke", args)) || {};
    return new InvokeResponse({
      status: Number(value.status ?? 200), headers: value.headers || {},
      body: Buffer.from(value.body_b64 || "", "base64"), function: name,
      version: Number(value.version || 0), requestId: String(value.request_id ?? ""),
    });
  }
}

function checkKey(key, what = "kv") {
  if (typeof key !== "string") throw new TypeError(`${what} keys must be strings, not ${typeof key}`);
  if (!key) throw new RangeError(`${what} keys must not be empty`);
  return key;
}

function checkJson(value, what) {
  try {
    JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`${what} must be JSON-serialisable: ${err.message}`);
  }
}

/** Map a handler's return value to [status, headers, body bytes] per docs/protocol.md. */
export async function toWireResponse(value) {
  if (value === undefined || value === null) return [204, {}, Buffer.alloc(0)];
  if (value instanceof Response) {
    const [body, implied] = encodeBody(value.body);
    const headers = { ...value.headers };
    if (implied && body.length && !Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) {
      headers["content-type"] = implied;
    }
    return [value.status, headers, body];
  }
  if (typeof globalThis.Response === "function" && value instanceof globalThis.Response) {
    // Headers yields each Set-Cookie apart (the one header HTTP cannot join): a line each.
    const headers = {};
    const cookies = [];
    value.headers.forEach((v, k) => { if (k === "set-cookie") cookies.push(v); else headers[k] = v; });
    if (cookies.length) headers["set-cookie"] = cookies.join("\n");
    return [value.status, headers, Buffer.from(await value.arrayBuffer())];
  }
  const [body, implied] = encodeBody(value);
  return [200, implied ? { "content-type": implied } : {}, body];
}

function encodeBody(body) {
  if (body === undefined || body === null) return [Buffer.alloc(0), null];
  if (body instanceof Uint8Array) return [Buffer.from(body), "application/octet-stream"];
  if (body instanceof ArrayBuffer) return [Buffer.from(body), "application/octet-stream"];
  if (typeof body === "string") return [Buffer.from(body, "utf-8"), "text/plain; charset=utf-8"];
  if (["object", "number", "boolean"].includes(typeof body)) {
    const text = JSON.stringify(body);
    if (text === undefined) throw new TypeError("the returned value is not JSON-serialisable");
    return [Buffer.from(text, "utf-8"), "application/json"];
  }
  throw new TypeError(
    `a function must return an object, array, string, bytes, a number, null or a Response, not ${typeof body}`);
}
