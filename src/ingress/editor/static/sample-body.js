// The sample of a trigger without a hook (event, segment, SFMC, Marketo): a JSON request body typed in the
// page, prefilled with a typical one. The API keeps no samples for these triggers, so each trigger's text is
// kept in this tab's memory only, while the page is open.

import { byId, say } from "./dom.js";
import { sampleBody } from "./kinds.js";

export class SampleBody {
  constructor(onChange) {
    this.field = byId("sample-body");
    this.problem = byId("sample-problem");
    this.texts = new Map(); // trigger id → the sample's text
    this.trigger = null;
    this.field.addEventListener("input", () => {
      this.texts.set(this.trigger.id, this.field.value);
      onChange();
    });
  }

  /** Show `trigger`'s sample: as last typed in this tab, else a typical body for its kind. */
  open(trigger) {
    this.trigger = trigger;
    if (!this.texts.has(trigger.id)) this.texts.set(trigger.id, JSON.stringify(sampleBody(trigger), null, 2));
    this.field.value = this.texts.get(trigger.id);
    say(this.problem, "");
  }

  /** The request object the mapping sees (SPEC §2, used as it is by the preview), or null when the sample
   * is not JSON, which is then said next to it. */
  request() {
    const text = this.field.value;
    let body;
    try {
      body = JSON.parse(text);
    } catch (error) {
      say(this.problem, `The sample is not valid JSON: ${error.message}`);
      return null;
    }
    say(this.problem, "");
    return {
      method: "POST",
      path: "/",
      headers: {},
      query: {},
      body,
      rawBody: text,
      contentType: "application/json",
      receivedAt: new Date().toISOString(),
    };
  }
}
