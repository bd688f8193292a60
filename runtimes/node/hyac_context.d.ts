// Types of the context a Hyac function receives on the node20 and deno runtimes.
// The implementation is hyac_context.mjs beside this file; keep the two in step.

/** A host call (context.kv …) was refused or failed on the host side. */
declare class HostCallError extends Error {
  /** Machine-readable reason, e.g. "forbidden", "quota_exceeded", "sandbox_unavailable" (every code: docs/api.md, "Error codes"). */
  readonly code: string;
  /** Human-readable explanation from the host. */
  readonly hostMessage: string;
  /** Further fields the host sent, e.g. quota, limit and use of a "quota_exceeded". */
  readonly details: Record<string, string | number | boolean>;
}

/** The function called with context.invoke() threw; code is "function_error". */
declare class InvocationError extends HostCallError {
  /** The name of the function that threw. */
  readonly function: string;
  /** The callee's error type, e.g. "TypeError" or "ZeroDivisionError". */
  readonly errorType: string;
  /** The callee's traceback (its own files and line numbers). */
  readonly traceback: string;
  /** The callee's request id (`hyac logs` finds its log lines by it). */
  readonly requestId: string;
}

/** What a function called with context.invoke() answered (any status it returned). */
interface InvokeResponse {
  /** HTTP status code of the callee's response. */
  readonly status: number;
  /** The callee's response headers. */
  readonly headers: Record<string, string>;
  /** The raw response body. */
  readonly body: Uint8Array;
  /** Whether the status is below 400. */
  readonly ok: boolean;
  /** The name and version of the function that answered. */
  readonly function: string;
  readonly version: number;
  /** The callee's request id. */
  readonly request_id: string;
  readonly requestId: string;
  /** The body parsed as JSON; an empty body gives null. */
  json<T = any>(): T | null;
  /** The body decoded as UTF-8 text. */
  text(): string;
}

/** The HTTP request that triggered this invocation. */
interface HyacRequest {
  /** HTTP method in upper case, e.g. "GET" or "POST". */
  readonly method: string;
  /** Path below the function's route, e.g. "/" or "/items/7". */
  readonly path: string;
  /** Query string parameters. */
  readonly query: Record<string, string>;
  /** Request headers, with lower-cased names. */
  readonly headers: Record<string, string>;
  /** The raw request body. */
  readonly body: Uint8Array;
  /** The caller's IP address. */
  readonly client_ip: string;
  readonly clientIp: string;
  /** The request id, also found in log lines and context.function.request_id. */
  readonly id: string;
  /** The body parsed as JSON; an empty body gives null. */
  json<T = any>(): T | null;
  /** The body decoded as UTF-8 text. */
  text(): string;
}

type HyacBody = string | Uint8Array | ArrayBuffer | object | number | boolean | null;

/** An HTTP response with an explicit status and headers. */
declare class HyacResponse {
  constructor(status?: number, headers?: Record<string, string | string[]>, body?: HyacBody);
  constructor(init: { status?: number; headers?: Record<string, string | string[]>; body?: HyacBody });
  status: number;
  headers: Record<string, string>;
  body: HyacBody;
}

/** Log lines for this invocation, tagged with its request id and level (console.log formatting). */
interface HyacLogger {
  debug(message: any, ...args: any[]): void;
  info(message: any, ...args: any[]): void;
  warning(message: any, ...args: any[]): void;
  warn(message: any, ...args: any[]): void;
  error(message: any, ...args: any[]): void;
  critical(message: any, ...args: any[]): void;
  /** ERROR level, followed by the stack of `error` (your own frames only). */
  exception(error: unknown, message?: string, ...args: any[]): void;
}

/** The tenant's key-value store: string keys, JSON values. */
interface HyacKV {
  /** The value stored under `key`, or `fallback` when there is none. */
  get<T = any>(key: string, fallback?: T): Promise<T | null>;
  /** Store `value` (JSON-serialisable) under `key`. */
  set(key: string, value: unknown): Promise<void>;
  /** Delete `key`; true if it existed. */
  delete(key: string): Promise<boolean>;
  /** Up to `limit` keys starting with `prefix`, in order. */
  list(prefix?: string, limit?: number): Promise<string[]>;
}

/** The tenant's secrets (`hyac secret set NAME`); values are redacted (***) from logs. */
interface HyacSecrets {
  /** The secret's value, or `fallback` when the tenant has no such secret. */
  get(name: string, fallback?: string): Promise<string | null>;
  /** The names of the tenant's secrets. */
  list(): Promise<string[]>;
}

/** One object of the tenant's storage. */
interface HyacObjectInfo {
  /** The object's key, e.g. "reports/2026-01.pdf". */
  readonly key: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Its content type, e.g. "application/pdf". */
  readonly content_type: string;
  readonly contentType: string;
  /** The SHA-256 of its bytes, in hex. */
  readonly sha256: string;
  /** When it was last written, as a Unix timestamp in seconds. */
  readonly updated_at: number;
  readonly updatedAt: number;
}

/** The tenant's object storage: bytes under string keys, "/" between folders. Keys are
 * at most 1024 bytes, objects at most 8 MiB; both count towards the storage quota. */
interface HyacStorage {
  /** Store `data` under `key` (a string as UTF-8 text/plain unless `contentType` says
   * otherwise), replacing any object there; resolves to its info. */
  put(key: string, data: Uint8Array | ArrayBuffer | string, contentType?: string | null): Promise<HyacObjectInfo>;
  /** The bytes stored under `key`, or null. */
  get(key: string): Promise<Uint8Array | null>;
  /** What is known of the object under `key` (not its bytes), or null. */
  stat(key: string): Promise<HyacObjectInfo | null>;
  /** Delete the object under `key`; true if it existed. */
  delete(key: string): Promise<boolean>;
  /** Up to `limit` (at most 1000) objects whose keys start with `prefix`, in key order;
   * for the next page pass the last key you got as `startAfter`. */
  list(prefix?: string, limit?: number, startAfter?: string | null): Promise<HyacObjectInfo[]>;
}

/** A file attached to a message. */
interface HyacAttachment {
  /** The name the recipient sees, e.g. "report.pdf" (without "/"). */
  filename: string;
  /** The file's bytes; a string is attached as UTF-8. */
  content: Uint8Array | ArrayBuffer | string;
  /** e.g. "application/pdf"; guessed from the filename when absent. */
  contentType?: string | null;
}

/** One message. Addresses are "ada@example.com" or "Ada Lovelace <ada@example.com>". */
interface HyacMailMessage {
  to: string | string[];
  subject: string;
  /** The plain-text body; give text, html or both. */
  text?: string | null;
  html?: string | null;
  cc?: string | string[] | null;
  bcc?: string | string[] | null;
  replyTo?: string | string[] | null;
  attachments?: HyacAttachment[];
  /** The display name of the sender; the address is always the agent's own. */
  fromName?: string | null;
}

/** Email, sent by the agent through its SMTP server. At most 50 recipients and 10 MiB per
 * message; each message counts towards the tenant's mails_per_day quota. */
interface HyacMail {
  /** Send one message; resolves to its Message-ID. Rejects with HostCallError
   * "invalid_input", "quota_exceeded", "mail_not_configured" or "mail_failed". */
  send(message: HyacMailMessage): Promise<string>;
}

/** Which function and version is running, and for which request. */
interface HyacFunctionInfo {
  readonly tenant: string;
  readonly name: string;
  readonly version: number;
  readonly sha256: string;
  /** The runtime, e.g. "node20" or "deno". */
  readonly runtime: string;
  readonly request_id: string;
  readonly requestId: string;
}

/** The background task an invocation runs. */
interface HyacTask {
  readonly id: string;
  /** 1 for the first run, 2 for the first retry, and so on. */
  readonly attempt: number;
  /** Report how far the task is, 0.0 to 1.0, with an optional short message. */
  progress(fraction: number, message?: string): Promise<void>;
}

/** Everything a function can reach; passed as `context` to `main(context)`. */
interface FunctionContext {
  /** The HTTP request being served. */
  readonly request: HyacRequest;
  /** Log lines tagged with this request's id. */
  readonly logger: HyacLogger;
  /** The function's environment variables (read-only). */
  readonly env: Readonly<Record<EnvName, string | undefined>>;
  /** The tenant's key-value store. */
  readonly kv: HyacKV;
  /** The tenant's secrets, by name. */
  readonly secrets: HyacSecrets;
  /** The tenant's object storage: put, get, stat, delete, list. */
  readonly storage: HyacStorage;
  /** Email through the agent's SMTP server: send({to, subject, text, html, ...}). */
  readonly mail: HyacMail;
  /** Which function, version and request this is. */
  readonly function: HyacFunctionInfo;
  /** When the invocation must be finished, as a Unix timestamp in seconds. */
  readonly deadline: number;
  /** The background task this invocation runs, or null. */
  readonly task: HyacTask | null;
  /** The Response class: `return new context.Response(201, {}, {made: true})`. */
  readonly Response: typeof HyacResponse;
  /** Seconds left before the deadline (never negative). */
  remaining_time(): number;
  remainingTime(): number;
  /** Send `text` to a notification channel: the tenant's own, or a shared platform
   * channel as "platform/NAME"; `fields` are shown beside it. Resolves to the delivery id
   * once stored (sent with retries; `hyac notify deliveries`). Counts towards the
   * notifications_per_day quota. Rejects with HostCallError "not_found", "invalid_input"
   * or "quota_exceeded". */
  notify(channel: string, text: string,
         fields?: Record<string, string | number | boolean>): Promise<string>;
  /** Queue a background task of `name` (of this tenant); resolves to its task id. */
  enqueue(name: FunctionName, payload?: unknown, options?: { delay?: number }): Promise<string>;
  /** Run function `name` (of this tenant) now; resolves to its response. A Uint8Array
   * payload is sent as it is, anything else as JSON. Rejects with InvocationError if the
   * callee threw, HostCallError "not_found" if there is no such function. */
  invoke(
    name: FunctionName,
    payload?: unknown,
    options?: { method?: string; path?: string; query?: Record<string, string>;
                headers?: Record<string, string> },
  ): Promise<InvokeResponse>;
}
