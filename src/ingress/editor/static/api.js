// The management API, called with the admin token in the Authorization header (never in a URL).

/** An error answer `{"error": {code, message, path?, line?, column?}}`, or a failure to reach the server. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.path = error.path;
    this.line = error.line;
    this.column = error.column;
  }

  /** One line for the page: the message, where the problem is, the code. */
  describe() {
    const where = [];
    if (this.path) where.push(`at ${this.path}`);
    if (this.line) where.push(`line ${this.line}${this.column ? `, column ${this.column}` : ""}`);
    else if (this.column) where.push(`column ${this.column}`); // of a one-line expression (JMESPath)
    const status = this.status ? `${this.status} ` : "";
    return `${this.message}${where.length ? ` (${where.join(", ")})` : ""} [${status}${this.code}]`;
  }
}

const PAGE_SIZE = 200; // the most a listing gives at once

/** The option of a call that no click or key asked for just now (a poll, the preview run after typing, the
 * re-read on the tab's return): its 401 must not open a prompt that takes the keyboard mid-typing. */
export const BACKGROUND = { background: true };

export class Api {
  /** `onUnauthorized(error, background)`: the server answered 401, to a `BACKGROUND` call or not. */
  constructor(token, env, onUnauthorized = () => {}) {
    this.token = token;
    this.env = env;
    this.onUnauthorized = onUnauthorized;
    this.tokenRefused = false; // the server answered 401 to the token: what runs by itself waits for another
  }

  /** Go on with another token (the server stopped taking this one). */
  useToken(token) {
    this.token = token;
    this.tokenRefused = false;
  }

  get(path, options) {
    return this.call("GET", path, undefined, options);
  }

  /** Every item of a paged listing (`{data, nextCursor}`), following its cursor from page to page. */
  async list(path) {
    const items = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (cursor) query.set("cursor", cursor);
      const page = await this.get(`${path}?${query}`);
      items.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor);
    return items;
  }

  post(path, body, options) {
    return this.call("POST", path, body, options);
  }

  patch(path, body) {
    return this.call("PATCH", path, body);
  }

  /** A trigger and its revision (its `ETag`). */
  readTrigger(id, options) {
    return this.exchange("GET", triggerPath(id), undefined, {}, options);
  }

  /** Change a trigger only if it is still at `revision` (`If-Match`; a 412 precondition_failed otherwise):
   * the changed trigger and its new revision. */
  patchTrigger(id, changes, revision) {
    return this.exchange("PATCH", triggerPath(id), changes, { "if-match": `"${revision}"` });
  }

  delete(path) {
    return this.call("DELETE", path);
  }

  /** The answer's JSON; an ApiError for any other status than 2xx. */
  async call(method, path, body, options) {
    return (await this.exchange(method, path, body, {}, options)).data;
  }

  /** `{data, revision}`: the answer's JSON and the revision its `ETag` names (null without one); an ApiError
   * for any other status than 2xx. `options`: `BACKGROUND`, or none. */
  async exchange(method, path, body, extraHeaders = {}, { background = false } = {}) {
    const headers = { ...extraHeaders, authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(`/v1/${encodeURIComponent(this.env)}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, { code: "network_error", message: `flowhook did not answer: ${error.message}` });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.ok) return { data, revision: revisionOf(response) };
    const error = new ApiError(response.status, data?.error ?? { code: "http_error", message: `HTTP ${response.status}` });
    if (response.status === 401) {
      this.tokenRefused = true;
      this.onUnauthorized(error, background);
    }
    throw error;
  }
}

/** The revision an `ETag` names: `"3"`, or `W/"3"` if a compressing proxy weakened it (sent back strong). */
function revisionOf(response) {
  const found = /^(?:W\/)?"(\d+)"$/.exec(response.headers.get("etag") ?? "");
  return found ? Number(found[1]) : null;
}

/** `/triggers/{id}…` with the id escaped. */
export const triggerPath = (id, rest = "") => `/triggers/${encodeURIComponent(id)}${rest}`;
