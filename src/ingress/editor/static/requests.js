// A webhook trigger's request log: the latest requests (newest first), one's details, replaying it, and
// replaying every refused one after the mapping is fixed. Bodies and headers come from strangers: they reach
// the page as text only (dom.js).

import { BACKGROUND, triggerPath } from "./api.js";
import { byId, h, say } from "./dom.js";
import { hasHook } from "./kinds.js";

const PAGE_SIZE = 20; // requests listed at a time; "Load more" follows the cursor
const REPLAY_PAGE_SIZE = 100; // the most a bulk replay call takes
const POLL_MS = 3000; // how often the list looks for new requests while the tab is visible

const when = (iso) => new Date(iso).toLocaleString();
const json = (value) => JSON.stringify(value, null, 2);

/** One line of the list: when, what it was answered, and whether it is a replay. */
function summary(entry) {
  const replay = entry.replayOf ? " · replay" : "";
  return `${when(entry.receivedAt)} · ${entry.status} ${entry.cause} · ${entry.mode}${replay}`;
}

/** The Idempotency-Key of every replay of a refused (or failed) request from this page, one by one or all at
 * once. One key, not one per click: a bulk replay passes over requests already recovered, but *Replay* on
 * one, or two tabs recovering at once, must not start its flow twice; under the same key it answers
 * `duplicate` (or `idempotency_conflict` if the mapping changed since). A replay refused again stores no
 * invocation, so the next one, after a fix, still runs. */
const recoveryKey = (triggerId) => `editor-recovery-${triggerId}`;

/** What the replay of a request already started answers (recovered by an earlier replay under the key above, or
 * with the flowInvocationId its mapping gives): nothing is started again. */
const ALREADY = new Set(["duplicate", "idempotency_conflict"]);

/** "Replayed N: A accepted, R refused, S skipped" from a bulk replay's items (by status class). */
function tally(items) {
  const count = (test) => items.filter(test).length;
  const already = count((item) => ALREADY.has(item.cause));
  const skipped = count((item) => item.skipped);
  const parts = [
    `${count((item) => item.status < 300 && !ALREADY.has(item.cause))} accepted`,
    `${count((item) => item.status >= 400 && item.status < 500 && !ALREADY.has(item.cause))} refused`,
  ];
  const failed = count((item) => item.status >= 500);
  if (failed) parts.push(`${failed} failed`);
  if (already) parts.push(`${already} duplicate`);
  parts.push(`${skipped} skipped`);
  return `Replayed ${items.length - skipped}: ${parts.join(", ")}.`;
}

function fact(term, value) {
  return value === null || value === undefined || value === "" ? [] : [h("dt", {}, term), h("dd", {}, String(value))];
}

/** What the mapping made of the request: its error, validation errors, output and console lines. */
function mappingPart(result) {
  if (!result) return [h("p", { class: "muted" }, "The mapping did not run on this request.")];
  const parts = [];
  if (result.error) {
    const { type, message, line } = result.error;
    parts.push(h("p", { class: "message error" }, `${type}: ${message}${line ? ` (line ${line})` : ""}`));
  }
  const problems = (result.validationErrors ?? []).map((problem) =>
    h("li", {}, h("code", { class: "path" }, problem.path), " ", problem.message),
  );
  if (problems.length) parts.push(h("ul", { class: "problems", "aria-label": "Validation errors" }, problems));
  const output = result.skipped ? "(skipped: the mapping returned null)" : json(result.output ?? null);
  parts.push(h("h4", {}, "Output"), h("pre", { class: "mono output" }, output));
  const logs = (result.logs ?? []).map((line) =>
    h("li", { "data-level": line.level }, h("span", { class: "level" }, line.level), " ", line.message),
  );
  if (logs.length) parts.push(h("h4", {}, "Console"), h("ul", { class: "console" }, logs));
  return parts;
}

export class RequestsPanel {
  /** `onSample(sampleId)`: a logged request was pasted as a sample of the trigger. */
  constructor(onSample) {
    this.onSample = onSample;
    this.section = byId("requests");
    this.list = byId("request-list");
    this.status = byId("requests-status");
    this.filter = byId("requests-filter");
    this.more = byId("requests-more");
    this.detail = byId("request-detail");
    this.bulkButton = byId("replay-refused");
    this.trigger = null;
    this.entries = [];
    this.cursor = null;
    this.loading = null; // the query of the page asked for last: only its answer is shown
    this.loads = 0; // pages asked for so far: a poll's answer is dropped if one was asked for meanwhile
    this.poller = null;
    this.polling = false;
    this.selected = null;
    this.filter.addEventListener("change", () => this.refresh());
    byId("requests-refresh").addEventListener("click", () => this.refresh());
    this.more.addEventListener("click", () => this.load(this.cursor));
    this.bulkButton.addEventListener("click", () => this.replayRefused());
  }

  /** Show `trigger`'s latest requests; only a webhook trigger has a log, the panel is hidden for the others. */
  open(api, trigger) {
    this.close();
    if (!hasHook(trigger)) return;
    this.api = api;
    this.trigger = trigger;
    this.section.hidden = false;
    this.refresh();
    this.poller = setInterval(() => this.poll(), POLL_MS);
  }

  close() {
    clearInterval(this.poller);
    this.poller = null;
    this.trigger = null;
    this.entries = [];
    this.selected = null;
    this.section.hidden = true;
    this.list.replaceChildren();
    this.detail.replaceChildren();
    this.more.hidden = true;
    say(this.status, "");
  }

  /** The first page again, with the filter as it is now. */
  refresh() {
    return this.load(null);
  }

  /** The page after `cursor` (the first for null), appended to the list. An answer for a trigger or a
   * filter no longer shown is dropped. */
  async load(cursor) {
    const { trigger } = this;
    const filter = this.filter.value;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filter) query.set("status", filter);
    if (cursor) query.set("cursor", cursor);
    this.loading = query.toString();
    this.loads += 1;
    let page;
    try {
      page = await this.api.get(triggerPath(trigger.id, `/requests?${query}`));
    } catch (error) {
      if (this.trigger === trigger) say(this.status, `Could not list the requests: ${error.describe()}`);
      return;
    }
    if (this.trigger !== trigger || this.loading !== query.toString()) return;
    this.entries = cursor ? [...this.entries, ...page.data] : page.data;
    this.cursor = page.nextCursor;
    this.render();
  }

  /** Look for requests logged since the list was read (while the tab is visible), and put them at its head:
   * the rest of the list (pages loaded, the one picked, the focus, where it is scrolled to) stays as it is.
   * More new ones than a page starts the list again, as Refresh does. A poll is no click: its 401 shows the
   * banner, not the prompt (editor.js), and polls wait for another token rather than ask every few seconds. */
  async poll() {
    const { trigger, loads } = this;
    if (!trigger || this.polling || this.api.tokenRefused || document.visibilityState !== "visible") return;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.filter.value) query.set("status", this.filter.value);
    this.polling = true;
    let page;
    try {
      page = await this.api.get(triggerPath(trigger.id, `/requests?${query}`), BACKGROUND);
    } catch {
      return; // the next poll tries again
    } finally {
      this.polling = false;
    }
    if (this.trigger !== trigger || this.loads !== loads) return; // a page, a filter or a trigger asked for since
    const known = new Set(this.entries.map((entry) => entry.id));
    const seen = page.data.findIndex((entry) => known.has(entry.id));
    if (page.data.length === 0 || seen === 0) return;
    if (seen === -1) {
      this.entries = page.data;
      this.cursor = page.nextCursor;
      this.render();
      return;
    }
    const fresh = page.data.slice(0, seen);
    this.entries = [...fresh, ...this.entries];
    const height = this.list.scrollHeight;
    this.list.prepend(...fresh.map((entry) => this.item(entry)));
    if (this.list.scrollTop > 0) this.list.scrollTop += this.list.scrollHeight - height; // the same rows in view
  }

  render() {
    const items = this.entries.map((entry) => this.item(entry));
    const none = this.filter.value ? "No requests with this status." : "No requests logged yet.";
    if (items.length === 0) items.push(h("li", { class: "muted" }, none));
    this.list.replaceChildren(...items);
    this.more.hidden = !this.cursor;
  }

  /** The entry's row: a button that shows it. */
  item(entry) {
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: "request",
          "data-request-id": entry.id,
          "data-status": String(entry.status).charAt(0),
          "aria-current": entry.id === this.selected ? "true" : null,
          onclick: () => this.show(entry.id),
        },
        summary(entry),
      ),
    );
  }

  /** One request as the log keeps it, with what can be done with it. */
  async show(requestId) {
    const { trigger } = this;
    this.selected = requestId;
    // Marked in place, not drawn again: the row clicked keeps the focus.
    for (const button of this.list.querySelectorAll("button.request")) {
      if (button.dataset.requestId === requestId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    let entry;
    try {
      entry = await this.api.get(`/requests/${encodeURIComponent(requestId)}`);
    } catch (error) {
      if (this.trigger === trigger) this.detail.replaceChildren(h("p", { class: "message error" }, error.describe()));
      return;
    }
    if (this.trigger !== trigger || this.selected !== requestId) return;
    this.renderDetail(entry);
  }

  renderDetail(entry) {
    const outcome = h("span", { class: "replay-outcome", role: "status" });
    const replay = h("button", { type: "button", onclick: () => this.replay(entry, replay, outcome) }, "Replay");
    const asSample = h(
      "button",
      { type: "button", disabled: entry.bodyTruncated, onclick: () => this.useAsSample(entry, outcome) },
      "Use as sample",
    );
    const request = `${entry.method} ${entry.path}${entry.query ? `?${entry.query}` : ""}`;
    const body = entry.bodyTruncated ? `${entry.body}\n… (cut short: ${entry.bodyBytes} bytes in all)` : entry.body;
    this.detail.replaceChildren(
      h("h3", {}, `Request ${entry.id}`),
      h(
        "dl",
        { class: "facts" },
        fact("Status", `${entry.status} ${entry.cause}`),
        fact("Message", entry.message),
        fact("Received", when(entry.receivedAt)),
        fact("Mode", entry.mode),
        fact("Request", request),
        fact("Client", entry.clientIp),
        fact("Replay of", entry.replayOf),
        fact("Invocation", entry.invocationId),
      ),
      h("div", { class: "row" }, replay, asSample, outcome),
      h("h4", {}, "Mapping"),
      ...mappingPart(entry.mapping),
      h("h4", {}, "Answer"),
      h("pre", { class: "mono" }, json(entry.response ?? null)),
      h("h4", {}, "Headers"),
      h("pre", { class: "mono headers" }, json(entry.headers)),
      h("h4", {}, `Body${entry.contentType ? ` (${entry.contentType})` : ""}`),
      h("pre", { class: "mono body" }, body || "(empty body)"),
    );
  }

  /** Run the request again through the trigger's current mapping and mode; the replay heads the list. An
   * accepted request runs again each time; a refused one is recovered once (see recoveryKey). */
  async replay(entry, button, outcome) {
    button.disabled = true;
    say(outcome, "Replaying…");
    const path = `/requests/${encodeURIComponent(entry.id)}/replay`;
    const headers = entry.status >= 400 ? { "idempotency-key": recoveryKey(entry.triggerId) } : {};
    try {
      const { data: answer } = await this.api.exchange("POST", path, undefined, headers);
      const why = answer.response?.error?.message ?? (answer.cause === "duplicate" ? "nothing started again" : null);
      say(outcome, `Replayed as ${answer.requestId}: ${answer.status} ${answer.cause}${why ? ` · ${why}` : ""}`);
      outcome.dataset.state = answer.status < 300 ? "ok" : "failed";
    } catch (error) {
      say(outcome, `Not replayed: ${error.describe()}`);
      outcome.dataset.state = "failed";
    } finally {
      button.disabled = false;
    }
    if (this.trigger?.id === entry.triggerId) await this.refresh();
  }

  /** Paste the request as a sample, to preview the mapping on it (secret headers stay `[redacted]`). */
  async useAsSample(entry, outcome) {
    const sample = { method: entry.method, query: entry.query, headers: entry.headers, body: entry.body };
    try {
      const created = await this.api.post(triggerPath(entry.triggerId, "/samples"), sample);
      say(outcome, "Added to the samples.");
      outcome.dataset.state = "ok";
      if (this.trigger?.id === entry.triggerId) this.onSample(created.id);
    } catch (error) {
      say(outcome, `Not added to the samples: ${error.describe()}`);
      outcome.dataset.state = "failed";
    }
  }

  /** Replay every refused (4xx) or failed (5xx) request, oldest first, a page at a time: the recovery after fixing
   * a mapping, or after the store was down. */
  async replayRefused() {
    const { trigger } = this;
    const question =
      `Replay every refused (4xx) or failed (5xx) request of trigger ${trigger.id} through its current mapping and mode? ` +
      "Each one accepted starts its flow; those already recovered by a replay from this page start nothing again.";
    if (!confirm(question)) return;
    const key = recoveryKey(trigger.id);
    const items = [];
    let cursor = null;
    let summary;
    this.bulkButton.disabled = true;
    say(this.status, "Replaying the refused requests…");
    try {
      do {
        const query = new URLSearchParams({ limit: String(REPLAY_PAGE_SIZE) }); // refused ones only, 4xx and 5xx
        if (cursor) query.set("cursor", cursor);
        const path = triggerPath(trigger.id, `/requests/replay?${query}`);
        const { data: page } = await this.api.exchange("POST", path, undefined, { "idempotency-key": key });
        items.push(...page.data);
        cursor = page.nextCursor;
      } while (cursor);
      summary = items.length ? tally(items) : "No refused requests to replay.";
    } catch (error) {
      summary = `${tally(items)} Then stopped: ${error.describe()}`;
    } finally {
      this.bulkButton.disabled = false;
    }
    if (this.trigger !== trigger) return; // another trigger opened meanwhile
    say(this.status, summary);
    await this.refresh();
  }
}
