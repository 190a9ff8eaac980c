// The API client: JSON over fetch, bearer token from sessionStorage, one shared
// "please give a token" prompt when the server answers 401.

const TOKEN_KEY = 'traitor.token';

export const token = {
  get: () => {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  },
  set: (value) => {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the token lives for this request only */ }
  },
};

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    /** The whole JSON answer (a 409 may say more than its message). */
    this.body = body;
  }

  /** The JSON field an error names ("cron: minute field ..." → "cron"), if any. */
  get field() {
    const m = /^([A-Za-z]+): /.exec(this.message);
    return m ? m[1] : null;
  }
}

let askForToken = null;
let pendingAsk = null;

/** main.js installs the dialog that asks for a token: (reason) => Promise<string|null>. */
export function setTokenPrompt(fn) {
  askForToken = fn;
}

/** Ask once for everyone waiting (several requests may get 401 at the same moment). */
export function requestToken(reason) {
  if (!askForToken) return Promise.resolve(null);
  if (!pendingAsk) {
    pendingAsk = askForToken(reason).then((value) => {
      pendingAsk = null;
      if (value) token.set(value);
      return value || null;
    });
  }
  return pendingAsk;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * api('/api/v1/jobs', {query: {limit: 50}}) → parsed JSON body.
 * Throws ApiError with the server's {"error": ...} message on any non-2xx answer.
 */
export async function api(path, { method = 'GET', body, query, signal } = {}) {
  const url = withQuery(path, query);
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const current = token.get();
    if (current) headers.Authorization = `Bearer ${current}`;
    let response;
    try {
      response = await fetch(url, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'cannot reach the server');
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (response.status === 401 && attempt < 3) {
      const reason = data && data.error ? data.error : 'this server needs an API token';
      const given = await requestToken(current ? `The token was refused (${reason}).` : 'This server needs an API token.');
      if (given) continue;
      throw new ApiError(401, reason);
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' ? data.error : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, data);
    }
    return data;
  }
}

/** ws://host/path?token=… (browsers cannot set headers on WebSockets). */
export function wsUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const current = token.get();
  const sep = path.includes('?') ? '&' : '?';
  return `${scheme}//${location.host}${path}${current ? `${sep}token=${encodeURIComponent(current)}` : ''}`;
}

/** Close code the server uses for a missing or wrong token on WebSockets. */
export const WS_UNAUTHORIZED = 4401;

// --------------------------------------------------------------- job names

const names = new Map();

/** Names of jobs by id, fetched once and cached; missing jobs read "(deleted)". */
export async function jobName(jobId, signal) {
  if (names.has(jobId)) return names.get(jobId);
  const pending = api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { signal })
    .then((r) => r.data.name || '(unnamed)')
    .catch((err) => {
      if (err.name === 'AbortError') { names.delete(jobId); throw err; }
      return err.status === 404 ? '(deleted job)' : jobId.slice(0, 8);
    });
  names.set(jobId, pending);
  return pending;
}

export function rememberJobName(jobId, name) {
  names.set(jobId, Promise.resolve(name || '(unnamed)'));
}
