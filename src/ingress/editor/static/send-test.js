// "Send test": the mapping as the preview shows it, on the sample it ran on, sent as a test run of the trigger's
// flow (`POST /triggers/{id}/send-test`): the draft flow and draft card templates, test users only, every card
// and event marked as a test. Each press is a new run.

import { BACKGROUND, triggerPath } from "./api.js";
import { byId, h, say } from "./dom.js";

/** Whether a preview's result is worth sending: a valid trigger request (a skipped one would send nothing). */
const sendable = (result) => result.ok && !result.skipped;

/** Why a preview's result is not a valid trigger request, in one line. */
function refusal(result) {
  if (result.error) return `${result.error.type}: ${result.error.message}`;
  return (result.validationErrors ?? []).map((problem) => `${problem.path} ${problem.message}`).join("; ");
}

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
    this.draftNote = byId("send-test-draft");
    this.checks = 0; // previews asked for so far: a draft check's answer is dropped once another one is due
    this.next = null; // {api, triggerId, body}: what a press sends, while the preview shows a valid output
    this.triggerId = null; // whose send the status shows
    this.sending = false;
    this.button.addEventListener("click", () => this.send());
  }

  /** A preview is due (an edit, another sample or mode, another trigger): nothing to send until it shows a
   * valid output. The last send's answer stays, unless it was another trigger's. */
  pending(triggerId) {
    this.next = null;
    this.checks += 1;
    say(this.draftNote, "");
    if (triggerId !== this.triggerId) this.show([]);
    this.triggerId = triggerId;
    this.update();
  }

  /** The preview `body` (`{mapping, sampleId | request, triggerId}`) gave `result`: sendable when it is a valid
   * trigger request with the variables a send applies, the draft's. A preview that applied the published
   * version's (a live trigger's, as its requests do) is run again with the draft's (`variablesOf: "draft"`),
   * and what they refuse is said beside the button, which stays disabled. */
  async ready(api, body, result) {
    const check = this.checks;
    let judged = result;
    if (sendable(result) && result.variablesOf === "published") {
      try {
        judged = await api.post("/mappings/preview", { ...body, variablesOf: "draft" }, BACKGROUND);
      } catch (error) {
        const why = `Could not check it with the draft's variables: ${error.describe()}`;
        if (check === this.checks) say(this.draftNote, why);
        return;
      }
      if (check !== this.checks) return; // an edit since: its preview decides
      if (!sendable(judged)) {
        say(this.draftNote, `Send test applies the draft's variables, which refuse this output: ${refusal(judged)}`);
      }
    }
    const { triggerId, ...sent } = body;
    this.next = sendable(judged) ? { api, triggerId, body: sent } : null;
    this.update();
  }

  /** Disabled without a valid output to send; while one is sent, only marked so (aria-disabled), as `disabled`
   * would drop the keyboard focus from the button pressed. */
  update() {
    this.button.disabled = this.next === null;
    if (this.sending) this.button.setAttribute("aria-disabled", "true");
    else this.button.removeAttribute("aria-disabled");
  }

  async send() {
    if (this.sending || this.next === null) return;
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
