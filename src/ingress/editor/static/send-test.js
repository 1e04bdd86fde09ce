// "Send test": the mapping as the preview shows it, on the sample it ran on, sent as a test run of the trigger's
// flow (`POST /triggers/{id}/send-test`): the draft flow and draft card templates, test users only, every card
// and event marked as a test. Each press is a new run.

import { triggerPath } from "./api.js";
import { byId, h } from "./dom.js";

/** Where test users are explained, for a send that reached none. */
const testUsersHint = () =>
  h(
    "span",
    { class: "hint" },
    "Only test users get a test run: add one with ",
    h("code", {}, 'POST /v1/{env}/test-users {"userId": "…"}'),
    " (docs/flows.md, “Test runs and live runs”).",
  );

export class SendTest {
  constructor() {
    this.button = byId("send-test-button");
    this.status = byId("send-test-status");
    this.next = null; // {api, triggerId, body}: what a press sends, while the preview shows a valid output
    this.triggerId = null; // whose send the status shows
    this.sending = false;
    this.button.addEventListener("click", () => this.send());
  }

  /** A preview is due (an edit, another sample or mode, another trigger): nothing to send until it shows a
   * valid output. The last send's answer stays, unless it was another trigger's. */
  pending(triggerId) {
    this.next = null;
    if (triggerId !== this.triggerId) this.show([]);
    this.triggerId = triggerId;
    this.update();
  }

  /** The preview `body` (`{mapping, sampleId | request, triggerId}`) gave `result`: sendable when it is a valid
   * trigger request (a skipped one would send nothing). */
  ready(api, body, result) {
    const { triggerId, ...sent } = body;
    this.next = result.ok && !result.skipped ? { api, triggerId, body: sent } : null;
    this.update();
  }

  update() {
    this.button.disabled = this.sending || this.next === null;
  }

  async send() {
    const { api, triggerId, body } = this.next;
    this.sending = true;
    this.update();
    this.show(["Sending…"]);
    try {
      const answer = await api.post(triggerPath(triggerId, "/send-test"), body);
      if (triggerId === this.triggerId) this.show(...sentTo(answer));
    } catch (error) {
      if (triggerId === this.triggerId) this.show([`Not sent: ${error.describe()}`], "failed");
    } finally {
      this.sending = false;
      this.update();
    }
  }

  show(children, state = null) {
    this.status.replaceChildren(...children);
    this.status.hidden = children.length === 0;
    if (state) this.status.dataset.state = state;
    else delete this.status.dataset.state;
  }
}

/** What the page says of an answer: who got the test run, who was ignored, and why when nobody got it. */
function sentTo(answer) {
  if (answer.skipped) return [["The mapping skipped this request (it returned null): nothing was sent."]];
  const { targetedUserIds: sent, ignoredUserIds: ignored } = answer;
  const run = h("span", { class: "muted small" }, ` Test run ${answer.flowInvocationId}.`);
  if (sent.length === 0) {
    return [[`Sent to nobody: ignored (not test users): ${ignored.join(", ")}. `, testUsersHint(), run], "failed"];
  }
  const also = ignored.length ? `; ignored (not test users): ${ignored.join(", ")}` : "";
  return [[`Sent to ${sent.join(", ")}${also}.`, run], "ok"];
}
