// Samples of one trigger: the list (newest first) to pick the previewed one or delete one, capture, and paste.

import { BACKGROUND, triggerPath } from "./api.js";
import { byId, clock, h, say } from "./dom.js";

const POLL_MS = 1000;
const SUMMARY_CHARS = 80;
const LIVE_WARNING =
  "The trigger is live: the next production request will be captured instead of starting the flow.";

function summary(sample) {
  return `${sample.source} · ${sample.method} · ${sample.contentType ?? "no content type"} · ${clock(sample.createdAt)}`;
}

export class SamplesPanel {
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.list = byId("samples");
    this.status = byId("capture-status");
    this.captureButton = byId("capture");
    this.cancelButton = byId("cancel-capture");
    this.pasteError = byId("paste-error");
    this.samples = [];
    this.selected = null;
    this.waiting = null;
    this.captureButton.addEventListener("click", () => this.capture());
    this.cancelButton.addEventListener("click", () => this.cancel());
    byId("paste-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.paste();
    });
    window.addEventListener("pagehide", () => this.leavePage());
  }

  /** Show `trigger`'s samples, selecting the newest; wait for a capture already armed. */
  async open(api, trigger) {
    this.stopWaiting();
    this.api = api;
    this.trigger = trigger;
    this.selected = null;
    say(this.status, "");
    say(this.pasteError, "");
    await this.refresh();
    this.select(this.samples[0]?.id ?? null);
    if (trigger.captureArmed) this.wait(new Set(this.samples.map((sample) => sample.id)), trigger.captureExpiresAt);
  }

  /** The trigger changed (its mode): what the waiting message says follows it. */
  update(trigger) {
    this.trigger = trigger;
    if (this.waiting) this.showWaiting();
  }

  /** Leave the trigger: a capture still armed from here is disarmed. */
  close() {
    if (this.waiting) this.api.delete(triggerPath(this.trigger.id, "/capture")).catch(() => {});
    this.stopWaiting();
  }

  /** The page goes away (closed, reloaded, left) while waiting: disarm, or the capture would take the next
   * request, a production one on a live trigger, with nobody waiting for it. The call has to outlive the page:
   * `fetch` with `keepalive` (`navigator.sendBeacon` cannot send the Authorization header). The server lets an
   * arming lapse anyway (`expiresAt`), for a browser that never sends it. */
  leavePage() {
    if (!this.waiting) return;
    fetch(`/v1/${encodeURIComponent(this.api.env)}${triggerPath(this.trigger.id, "/capture")}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${this.api.token}` },
      keepalive: true,
      credentials: "omit",
    }).catch(() => {});
    this.stopWaiting();
    say(this.status, "Capture was disarmed when the page was left.");
  }

  async refresh() {
    try {
      this.samples = (await this.api.get(triggerPath(this.trigger.id, "/samples"))).data;
    } catch (error) {
      say(this.status, `Could not list the samples: ${error.describe()}`);
      return;
    }
    this.render();
  }

  render() {
    const items = this.samples.map((sample, index) => {
      const id = `sample-${index}`;
      const body = sample.body.length > SUMMARY_CHARS ? `${sample.body.slice(0, SUMMARY_CHARS)}…` : sample.body;
      const radio = h("input", { type: "radio", name: "sample", id, value: sample.id, onchange: () => this.select(sample.id) });
      radio.checked = sample.id === this.selected;
      return h(
        "li",
        { "data-sample-id": sample.id },
        radio,
        h("label", { for: id }, h("span", {}, summary(sample)), h("code", { class: "body" }, body || "(empty body)")),
        h(
          "button",
          {
            type: "button",
            class: "small",
            "aria-label": `Delete sample: ${summary(sample)}`,
            onclick: () => this.remove(sample),
          },
          "Delete",
        ),
      );
    });
    if (items.length === 0) items.push(h("li", { class: "muted" }, "No samples yet: capture a request or paste one."));
    this.list.replaceChildren(...items);
  }

  select(sampleId) {
    this.selected = sampleId;
    for (const radio of this.list.querySelectorAll('input[name="sample"]')) radio.checked = radio.value === sampleId;
    const sample = this.samples.find((candidate) => candidate.id === sampleId);
    byId("sample-details").hidden = !sample;
    byId("sample-view").textContent = sample ? `${JSON.stringify(sample.headers, null, 2)}\n\n${sample.body}` : "";
    this.onSelect(sampleId);
  }

  /** `DELETE …/samples/{id}`, then the list as it now is; the preview moves to the newest if it ran on that one.
   * The focus, on the Delete button drawn away, goes to the next sample's (or the last one's), else to Capture. */
  async remove(sample) {
    const index = Math.max(0, this.samples.indexOf(sample));
    let problem = null;
    try {
      await this.api.delete(triggerPath(this.trigger.id, `/samples/${encodeURIComponent(sample.id)}`));
    } catch (error) {
      problem = `Could not delete the sample: ${error.describe()}`;
    }
    await this.refresh();
    if (!this.samples.some((found) => found.id === this.selected)) this.select(this.samples[0]?.id ?? null);
    if (document.activeElement === document.body) {
      const deletes = this.list.querySelectorAll("button");
      const capture = this.waiting ? this.cancelButton : this.captureButton;
      (deletes[Math.min(index, deletes.length - 1)] ?? capture).focus();
    }
    if (this.waiting) this.showWaiting(problem ?? "");
    else say(this.status, problem ?? `Deleted the ${sample.source} sample of ${clock(sample.createdAt)}.`);
  }

  /** Arm capture, then wait for the sample it makes (until the arming lapses). */
  async capture() {
    say(this.status, "");
    await this.refresh();
    const known = new Set(this.samples.map((sample) => sample.id));
    let armed;
    try {
      armed = await this.api.post(triggerPath(this.trigger.id, "/capture"));
    } catch (error) {
      say(this.status, `Could not arm capture: ${error.describe()}`);
      return;
    }
    this.wait(known, armed.expiresAt);
  }

  /** Poll until a new captured sample shows up, or the trigger is no longer armed without one: the arming
   * lapsed (`expiresAt`, as the trigger last showed it armed: armed again elsewhere, it lapses then), or was
   * cancelled elsewhere. */
  wait(known, expiresAt) {
    const waiting = { known, timer: null };
    this.waiting = waiting;
    this.captureButton.hidden = true;
    this.cancelButton.hidden = false;
    this.showWaiting();
    const poll = async () => {
      if (this.api.tokenRefused) {
        // Signed out under the page: asking again each second is pointless; wait for a new token.
        waiting.timer = setTimeout(poll, POLL_MS);
        return;
      }
      let armed = true;
      let samples = null;
      try {
        // The trigger first: disarmed by a capture, it has its sample by the time the samples are read.
        const trigger = await this.api.get(triggerPath(this.trigger.id), BACKGROUND);
        armed = trigger.captureArmed;
        if (armed) expiresAt = trigger.captureExpiresAt;
        samples = (await this.api.get(triggerPath(this.trigger.id, "/samples"), BACKGROUND)).data;
      } catch (error) {
        if (this.waiting === waiting) this.showWaiting(error.describe());
      }
      if (this.waiting !== waiting) return; // cancelled, or another trigger opened, meanwhile
      const captured = samples?.find((sample) => !known.has(sample.id) && sample.source === "captured");
      if (!captured && samples && !armed) {
        this.stopWaiting();
        const lapsed = expiresAt && Date.now() >= Date.parse(expiresAt);
        const why = lapsed ? `it lapsed at ${clock(expiresAt)} with no request` : "it was cancelled elsewhere";
        say(this.status, `Capture is no longer armed: ${why}. Capture again to wait for a request.`);
        return;
      }
      if (!captured) {
        waiting.timer = setTimeout(poll, POLL_MS);
        return;
      }
      this.stopWaiting();
      this.samples = samples;
      this.render();
      say(this.status, `Captured a ${captured.method} request at ${clock(captured.createdAt)}.`);
      this.select(captured.id);
    };
    waiting.timer = setTimeout(poll, POLL_MS);
  }

  showWaiting(problem = "") {
    let text = `Waiting for a request to ${this.trigger.url}…`;
    if (this.trigger.mode === "disabled") text += " The trigger is disabled: requests are refused before capture.";
    if (this.trigger.mode === "live") text += ` ${LIVE_WARNING}`;
    say(this.status, problem ? `${text} (${problem})` : text);
    this.status.dataset.state = "waiting";
  }

  async cancel() {
    this.stopWaiting();
    try {
      await this.api.delete(triggerPath(this.trigger.id, "/capture"));
      say(this.status, "Capture cancelled.");
    } catch (error) {
      say(this.status, `Could not disarm capture: ${error.describe()}`);
    }
  }

  stopWaiting() {
    if (this.waiting) clearTimeout(this.waiting.timer);
    this.waiting = null;
    this.captureButton.hidden = false;
    this.cancelButton.hidden = true;
    delete this.status.dataset.state;
  }

  /** `POST …/samples` from the paste form; the API's refusal is shown with the field at fault. */
  async paste() {
    say(this.pasteError, "");
    const sample = { body: byId("paste-body").value };
    const contentType = byId("paste-type").value.trim();
    if (contentType) sample.contentType = contentType;
    const headers = byId("paste-headers").value.trim();
    if (headers) {
      try {
        sample.headers = JSON.parse(headers);
      } catch (error) {
        say(this.pasteError, `Headers must be a JSON object: ${error.message}`);
        return;
      }
    }
    let created;
    try {
      created = await this.api.post(triggerPath(this.trigger.id, "/samples"), sample);
    } catch (error) {
      say(this.pasteError, error.describe());
      return;
    }
    await this.refresh();
    this.select(created.id);
  }
}
