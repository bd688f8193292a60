// The /v1 API, called with the session cookie; changes carry the session's CSRF token.

const session = { csrf: null, tenant: "default" };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) { session.csrf = token; }
export function setTenant(name) { session.tenant = name; }
export function currentTenant() { return session.tenant; }

function headers(extra = {}, tenant) {
  const out = { "X-Hyac-Tenant": tenant || session.tenant, ...extra };
  if (session.csrf) out["X-Hyac-CSRF"] = session.csrf;
  return out;
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function failure(response) {
  let code = "error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) { code = body.error.code; message = body.error.message; }
  } catch { /* not JSON: keep the status line */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("hyac:signed-out"));
  return new ApiError(response.status, code, message);
}

// A GET with no answer after this long is sent once more, then given up with an error:
// a request lost on its way (a connection that hung) never leaves a view "Loading…".
// A GET the network dropped (the browser aborts requests in flight when a network
// interface changes, as Docker's do when containers start) is sent once more too.
// Changes are not repeated: the first may have been carried out.
const GET_TIMEOUT_MS = 15000;
const RETRY_AFTER_MS = 250;

async function send(method, target, init) {
  if (method !== "GET") return fetch(target, init);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(target, { ...init, signal: AbortSignal.timeout(GET_TIMEOUT_MS) });
    } catch (error) {
      const timedOut = error.name === "TimeoutError";
      if (!timedOut && error.name !== "TypeError") throw error;  // TypeError: the network failed
      if (attempt === 2) {
        const path = target.split("?")[0];
        if (!timedOut) throw new ApiError(0, "network", `${path} could not be reached (${error.message}), twice.`);
        throw new ApiError(0, "timeout",
          `The agent did not answer ${path} within ${GET_TIMEOUT_MS / 1000} s, twice.`);
      }
      if (!timedOut) await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
    }
  }
}

export async function api(method, path, { body, params, tenant } = {}) {
  const init = { method, credentials: "same-origin", headers: headers({}, tenant) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await send(method, url(path, params), init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

// Server-sent events over fetch (EventSource cannot send the tenant header).
export function stream(path, params, onEvent, onEnd) {
  const abort = new AbortController();
  (async () => {
    try {
      const response = await fetch(url(path, params), {
        credentials: "same-origin", headers: headers(), signal: abort.signal,
      });
      if (!response.ok) throw await failure(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length) onEvent(event, JSON.parse(data.join("\n")));
        }
      }
      if (onEnd) onEnd(null);
    } catch (error) {
      if (!abort.signal.aborted && onEnd) onEnd(error);
    }
  })();
  return () => abort.abort();
}

export async function signIn(body) {
  const response = await fetch("/console/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function whoami() {
  const response = await send("GET", "/console/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function signOut() {
  await fetch("/console/session", {
    method: "DELETE", credentials: "same-origin", headers: headers(),
  });
}
