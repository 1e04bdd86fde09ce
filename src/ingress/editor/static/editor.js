// The mapping editor: sign in with the admin token, pick a trigger, edit its mapping against a sample
// with a live preview, save. It uses only the public management API.

import { Api, BACKGROUND } from "./api.js";
import { byId, canonical, clock, h, say } from "./dom.js";
import { hasHook, hasMapping, identity } from "./kinds.js";
import { MappingForm, fieldError, leftOutFields } from "./mapping.js";
import { Preview } from "./preview.js";
import { RequestsPanel } from "./requests.js";
import { SampleBody } from "./sample-body.js";
import { SamplesPanel } from "./samples.js";
import { SendTest } from "./send-test.js";

const SESSION_KEY = "flowhook.editor"; // sessionStorage only: the token leaves with the tab
const PREVIEW_DELAY_MS = 300;
const PATCH_ATTEMPTS = 3; // of a change sent again because the trigger changed only in what the page does not show

const state = {
  api: null,
  flows: [], // [{flow, triggers}] with the triggers that have a mapping
  trigger: null, // as the server last showed it
  flow: null,
  // What the edits start from: the revision, mode and mapping (canonical JSON) the server gave and the page
  // took on. Changes are sent against this revision (If-Match), so one made elsewhere is never overwritten.
  base: null,
  saveMessage: null, // [text, state] of the last save, shown until the mapping is edited again
  conflict: null, // {current: {data, revision}, changes}: a change refused as the trigger changed elsewhere
  sampleId: null,
  previewTimer: null,
  previewRun: 0, // only the answer to the latest preview is shown
  rereading: null, // the re-read of the open trigger in flight (focus and visibilitychange come together)
  refusal: null, // the server's last 401 to the token, while the banner asks to sign in again
};

const mapping = new MappingForm(() => {
  state.saveMessage = null;
  showSaveStatus();
  schedulePreview();
});
const preview = new Preview();
const sendTest = new SendTest();
const samples = new SamplesPanel((sampleId) => {
  state.sampleId = sampleId;
  schedulePreview();
});
const sampleBody = new SampleBody(schedulePreview);
const requests = new RequestsPanel(async (sampleId) => {
  await samples.refresh();
  samples.select(sampleId);
});

// --- Sign-in -----------------------------------------------------------------------------------------

/** The API with `token`. When the server stops taking it (a rotated token, a restart with another), a trigger
 * open stays as it is, unsaved edits included, and a banner asks to sign in again; the prompt itself opens only
 * for what the user just did (a click, a key: Save, Send test, Refresh…), never for a poll or the preview run
 * while typing, as it would take the keyboard mid-word. With no trigger open the page signs out. A sign-in
 * attempt's 401 is for its own form to show. */
function api(token, env) {
  const made = new Api(token, env, (error, background) => {
    if (made !== state.api) return;
    if (!state.trigger) signOut(`Signed out: ${error.describe()}`);
    else if (background) showRefused(error);
    else askToken(error);
  });
  return made;
}

async function signIn(event) {
  event.preventDefault();
  const token = byId("token").value.trim();
  const env = byId("env").value.trim() || "default";
  const candidate = api(token, env);
  try {
    await candidate.get("/action-flows");
  } catch (error) {
    say(byId("signin-error"), `Sign-in failed: ${error.describe()}`);
    return;
  }
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, env }));
  byId("token").value = "";
  await start(candidate);
}

async function start(signedIn) {
  state.api = signedIn;
  say(byId("signin-error"), "");
  byId("signin").hidden = true;
  byId("intro").hidden = true;
  byId("session").hidden = false;
  byId("session-env").textContent = signedIn.env;
  byId("workspace").hidden = false;
  await loadFlows();
  await openFromHash();
}

/** Say, without taking the focus, that the server refused the token; what runs by itself waits meanwhile. */
function showRefused(error) {
  state.refusal = error;
  byId("token-refused").hidden = false;
}

/** Ask for the token again over the page, which is left as it is. */
function askToken(error) {
  showRefused(error);
  say(
    byId("reauth-message"),
    `The server no longer takes the admin token this page signed in with: ${error.describe()}. ` +
      "Sign in again to go on: the trigger stays open, with your unsaved changes. A save it refused is not " +
      "retried: save again.",
  );
  const dialog = byId("reauth");
  if (dialog.open) return;
  say(byId("reauth-error"), "");
  dialog.showModal();
}

/** Take the token typed in the prompt once the server takes it, and go on where the page was. */
async function signInAgain(event) {
  event.preventDefault();
  const token = byId("reauth-token").value.trim();
  try {
    await new Api(token, state.api.env).get("/action-flows");
  } catch (error) {
    say(byId("reauth-error"), `Sign-in failed: ${error.describe()}`);
    return;
  }
  state.api.useToken(token); // the panels hold this Api: they go on with the new token too
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, env: state.api.env }));
  byId("reauth-token").value = "";
  byId("reauth").close();
  hideRefused(byId(state.trigger ? "save" : "reload-flows"));
  if (state.trigger) schedulePreview(); // the one refused, or its answer dropped
  else await openFromHash(); // it failed to open for want of the token
}

/** The banner goes; the focus, back on its button once the prompt it opened closed, moves to `next`. */
function hideRefused(next) {
  const banner = byId("token-refused");
  if (banner.contains(document.activeElement)) next.focus();
  state.refusal = null;
  banner.hidden = true;
}

function signOut(message) {
  byId("reauth").close();
  sessionStorage.removeItem(SESSION_KEY);
  closeTrigger();
  state.api = null;
  byId("workspace").hidden = true;
  byId("session").hidden = true;
  byId("signin").hidden = false;
  byId("intro").hidden = false;
  say(byId("signin-error"), message);
  hideRefused(byId("token"));
}

// --- Flows and triggers ------------------------------------------------------------------------------

async function loadFlows() {
  const status = byId("flows-status");
  status.textContent = "Loading…";
  try {
    const [flows, triggers] = await Promise.all([state.api.get("/action-flows"), state.api.list("/triggers")]);
    state.flows = withTriggers(flows.data, triggers);
  } catch (error) {
    status.textContent = `Could not list the flows: ${error.describe()}`;
    return;
  }
  status.textContent = state.flows.length ? "" : "No flows in this environment yet.";
  renderFlows();
}

/** Each flow with its triggers that have a mapping, oldest first as the flow's own listing has them (the
 * environment's listing, one paged walk however many flows there are, is newest first). */
function withTriggers(flows, triggers) {
  const byFlow = new Map(flows.map((flow) => [flow.id, []]));
  for (const trigger of triggers.filter(hasMapping).reverse()) byFlow.get(trigger.flowId)?.push(trigger);
  return flows.map((flow) => ({ flow, triggers: byFlow.get(flow.id) }));
}

function triggerLabel(trigger) {
  return [`${trigger.mode} · ${trigger.mapping.kind}`, h("span", { class: "identity" }, identity(trigger))];
}

function renderFlows() {
  const items = state.flows.map(({ flow, triggers }) => {
    const buttons = triggers.map((trigger) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "trigger",
            "data-trigger-id": trigger.id,
            "aria-current": trigger.id === state.trigger?.id ? "true" : null,
            onclick: () => (location.hash = `trigger=${encodeURIComponent(trigger.id)}`),
          },
          triggerLabel(trigger),
        ),
      ),
    );
    if (buttons.length === 0) buttons.push(h("li", { class: "muted" }, "no triggers with a mapping"));
    const published = flow.publishedVersion === null ? h("span", { class: "muted" }, " · not published") : null;
    return h("li", {}, h("span", { class: "flow-name" }, flow.name ?? flow.id), published, h("ul", {}, buttons));
  });
  byId("flows").replaceChildren(...items);
}

function hashTrigger() {
  return new URLSearchParams(location.hash.slice(1)).get("trigger");
}

async function openFromHash() {
  const id = hashTrigger();
  if (!state.api || !id || id === state.trigger?.id) return;
  if (isDirty() && !confirm("Discard the unsaved changes to this mapping?")) {
    history.replaceState(null, "", `#trigger=${encodeURIComponent(state.trigger.id)}`);
    return;
  }
  await openTrigger(id);
}

async function openTrigger(id) {
  const failed = byId("trigger-error");
  say(failed, "");
  let read;
  let flow;
  try {
    read = await state.api.readTrigger(id);
    if (!hasMapping(read.data)) {
      closeTrigger();
      say(failed, `${read.data.id} is the ${read.data.type} trigger of its flow: it has no mapping to edit.`);
      return;
    }
    flow = await state.api.get(`/action-flows/${encodeURIComponent(read.data.flowId)}`);
  } catch (error) {
    closeTrigger();
    say(failed, `Could not open trigger ${id}: ${error.describe()}`);
    return;
  }
  const trigger = read.data;
  samples.close();
  state.previewRun += 1;
  state.flow = flow;
  state.sampleId = null;
  state.saveMessage = null;
  hideConflict();
  byId("pick-trigger").hidden = true;
  byId("trigger").hidden = false;
  byId("samples-pane").hidden = false;
  byId("save").disabled = false;
  byId("trigger-title").textContent = `Trigger ${trigger.id}`;
  byId("trigger-flow").textContent = flow.name ?? flow.id;
  const hook = hasHook(trigger);
  say(byId("trigger-identity"), hook ? "" : identity(trigger));
  byId("url-row").hidden = !hook;
  byId("hook-samples").hidden = !hook;
  byId("typed-sample").hidden = hook;
  byId("hook-url").value = hook ? trigger.url : "";
  requests.open(state.api, trigger);
  say(byId("mode-status"), "");
  mapping.load(trigger.mapping);
  adopt(trigger, read.revision);
  if (hook) {
    await samples.open(state.api, trigger);
  } else {
    sampleBody.open(trigger);
    schedulePreview();
  }
}

/** No trigger open: the form is hidden and nothing can be saved (a link to a trigger that does not exist,
 * or could not be read, must not leave the previous one open under its URL). */
function closeTrigger() {
  samples.close();
  requests.close();
  clearTimeout(state.previewTimer);
  state.previewRun += 1;
  state.trigger = null;
  state.flow = null;
  state.base = null;
  state.sampleId = null;
  state.saveMessage = null;
  hideConflict();
  byId("trigger").hidden = true;
  byId("samples-pane").hidden = true;
  byId("pick-trigger").hidden = false;
  byId("save").disabled = true;
  renderFlows();
}

/** Show the trigger as the server answered it: its mode with its warning, its entry in the list. */
function showServer(trigger) {
  state.trigger = trigger;
  byId("mode").value = trigger.mode;
  showModeWarning();
  updateListed(trigger);
  if (hasHook(trigger)) samples.update(trigger);
}

/** Take the server's trigger at `revision` as what the edits start from. */
function adopt(trigger, revision) {
  showServer(trigger);
  state.base = { revision, mode: trigger.mode, mapping: canonical(trigger.mapping) };
  showSaveStatus();
}

function updateListed(trigger) {
  for (const entry of state.flows) {
    entry.triggers = entry.triggers.map((listed) => (listed.id === trigger.id ? trigger : listed));
  }
  renderFlows();
}

// --- Mode --------------------------------------------------------------------------------------------

function showModeWarning() {
  const { trigger, flow } = state;
  let warning = "";
  if (trigger.mode === "live" && flow.publishedVersion === null) {
    warning =
      `Flow ${flow.name ?? flow.id} is not published: live requests are refused (409 flow_not_published) ` +
      "until it is. Publish the flow, or keep this trigger in test mode.";
  } else if (trigger.mode === "live") {
    warning =
      "This trigger is live: a saved mapping applies to live requests at once. " +
      "Switch it to test mode before editing the mapping.";
  }
  say(byId("mode-warning"), warning);
}

async function setMode(mode) {
  const status = byId("mode-status");
  say(status, "Saving…");
  let answer;
  try {
    answer = await patchTrigger({ mode });
  } catch (error) {
    say(status, `Mode not changed: ${error.describe()}`);
    byId("mode").value = state.trigger.mode;
    return;
  }
  if (answer === null) {
    say(status, "Mode not changed: the trigger was changed elsewhere (see below).");
    return;
  }
  adopt(answer.data, answer.revision);
  say(status, `Mode saved: ${answer.data.mode} (${clock(answer.data.updatedAt)})`);
  schedulePreview(); // the flow variables the preview applies follow the mode
}

// --- Save --------------------------------------------------------------------------------------------

function isDirty() {
  return state.base !== null && canonical(mapping.spec()) !== state.base.mapping;
}

/** The one status line beside Save: the last save's outcome until the next edit, else whether the mapping
 * differs from the saved one. */
function showSaveStatus() {
  const status = byId("save-status");
  const [text, mark] = state.saveMessage ?? (isDirty() ? ["Unsaved changes", "dirty"] : ["", null]);
  say(status, text);
  if (mark) status.dataset.state = mark;
  else delete status.dataset.state;
}

async function save() {
  if (!state.trigger) return;
  state.saveMessage = ["Saving…", null];
  showSaveStatus();
  let answer;
  try {
    answer = await patchTrigger({ mapping: mapping.spec() });
  } catch (error) {
    state.saveMessage = [`Not saved: ${error.describe()}`, "failed"];
    showSaveStatus();
    if (error.line) mapping.markLine(error.line);
    return;
  }
  if (answer === null) {
    state.saveMessage = ["Not saved: the trigger was changed elsewhere (see below).", "failed"];
    showSaveStatus();
    return;
  }
  adopt(answer.data, answer.revision);
  state.saveMessage = isDirty() ? null : [`Saved at ${clock(answer.data.updatedAt)}`, "ok"]; // or typed meanwhile
  showSaveStatus();
  schedulePreview();
}

// --- Changes made elsewhere --------------------------------------------------------------------------

/** PATCH `changes` against the revision the edits start from: `{data, revision}`, or null once a conflict is
 * shown. A trigger changed elsewhere only in what the page does not show (capture armed or disarmed, its
 * verification or allowlist) is no conflict: the change is sent again against its new revision. */
async function patchTrigger(changes) {
  let revision = state.base.revision;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const answer = await state.api.patchTrigger(state.trigger.id, changes, revision);
      hideConflict();
      return answer;
    } catch (error) {
      if (error.code !== "precondition_failed") throw error;
    }
    const current = await state.api.readTrigger(state.trigger.id);
    showServer(current.data);
    if (attempt === PATCH_ATTEMPTS || !isBase(current.data)) {
      showConflict(current, changes);
      return null;
    }
    revision = current.revision;
  }
}

/** Whether `trigger` has the mode and mapping the edits start from. */
function isBase(trigger) {
  return trigger.mode === state.base.mode && canonical(trigger.mapping) === state.base.mapping;
}

/** Show that the trigger changed elsewhere: `changes` (the mapping, or a mode) were refused by a save, or,
 * `noticed` on the tab's return, are unsaved edits a save would now have refused. */
function showConflict(current, changes, noticed = false) {
  state.conflict = { current, changes };
  const changed = [];
  if (current.data.mode !== state.base.mode) changed.push(`its mode is now ${current.data.mode}`);
  if (canonical(current.data.mapping) !== state.base.mapping) changed.push("its mapping was changed");
  const what = changed.length ? changed.join(" and ") : "its settings keep changing";
  const saving = "mapping" in changes;
  const refused = noticed
    ? "Your changes are not saved yet"
    : saving
      ? "Your mapping was not saved"
      : `The mode was not changed to ${changes.mode}`;
  const overwrite = saving ? "Overwrite saves your mapping over it" : `Overwrite sets the mode to ${changes.mode}`;
  say(
    byId("conflict-message"),
    `Trigger ${state.trigger.id} was changed elsewhere since you opened it: ${what}. ${refused}. ` +
      `Reload shows the saved version (your mapping stays below, to copy); ${overwrite}.`,
  );
  const spec = mapping.spec();
  byId("conflict-mine").value = spec.kind === "javascript" ? spec.source : JSON.stringify(spec, null, 2);
  byId("conflict-reload").hidden = false;
  byId("conflict-overwrite").hidden = false;
  byId("conflict-dismiss").hidden = true;
  byId("conflict").hidden = false;
}

function hideConflict() {
  state.conflict = null;
  byId("conflict").hidden = true;
}

/** Re-read the open trigger when the tab is back in view: it may have changed in another tab or through the
 * API meanwhile, which the page would otherwise show until a reload, and a save would only then find out. */
function rereadOnReturn() {
  if (document.visibilityState !== "visible" || !state.trigger || state.conflict || state.rereading) return;
  if (state.api.tokenRefused) return; // the banner asks to sign in again; the prompt waits for a click
  state.rereading = reread().finally(() => (state.rereading = null));
}

/** Without unsaved edits, take the server's version silently; with them, a mode or mapping changed elsewhere
 * is shown as the conflict a save would meet. A change to what the page does not show is no conflict. */
async function reread() {
  const base = state.base;
  let read;
  try {
    read = await state.api.readTrigger(state.trigger.id, BACKGROUND);
  } catch {
    return; // not reachable for a moment, or deleted: the next change made here says so
  }
  if (state.base !== base || state.conflict || read.revision === base.revision) return; // or changed here since
  if (isBase(read.data)) {
    adopt(read.data, read.revision);
  } else if (isDirty()) {
    showServer(read.data);
    showConflict(read, { mapping: mapping.spec() }, true);
  } else {
    if (canonical(read.data.mapping) !== base.mapping) mapping.load(read.data.mapping); // else keep other kinds'
    state.saveMessage = null;
    adopt(read.data, read.revision);
    schedulePreview();
  }
}

/** Show the saved version, read afresh, in place of the edits, which stay in the conflict box to copy. */
async function reloadSaved() {
  let read;
  try {
    read = await state.api.readTrigger(state.trigger.id);
  } catch (error) {
    say(byId("conflict-message"), `Could not reload the trigger: ${error.describe()}`);
    return;
  }
  state.conflict = null;
  mapping.load(read.data.mapping);
  state.saveMessage = null;
  adopt(read.data, read.revision);
  say(byId("conflict-message"), "Reloaded the saved version. Your mapping is below, to copy.");
  byId("conflict-reload").hidden = true;
  byId("conflict-overwrite").hidden = true;
  byId("conflict-dismiss").hidden = false;
  schedulePreview();
}

/** Apply the refused change over the version saved elsewhere (for a mapping: as the form has it now). */
async function overwrite() {
  const { current, changes } = state.conflict;
  state.base = { revision: current.revision, mode: current.data.mode, mapping: canonical(current.data.mapping) };
  hideConflict();
  if ("mapping" in changes) await save();
  else await setMode(changes.mode);
}

// --- Preview -----------------------------------------------------------------------------------------

function schedulePreview() {
  sendTest.pending(state.trigger?.id ?? null); // until this preview shows a valid output
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(runPreview, PREVIEW_DELAY_MS);
}

async function runPreview() {
  const run = ++state.previewRun;
  if (!state.trigger) return;
  const sample = previewSample();
  if (!sample) {
    mapping.noteFields(new Map());
    return;
  }
  if (state.api.tokenRefused) {
    preview.idle("The admin token was refused: sign in again to preview the mapping.");
    return; // typing goes on in the form: a request now would be refused too
  }
  preview.running();
  // The trigger, not just its flow: the preview applies the variables its requests do (its mode's version).
  const spec = mapping.spec();
  const body = { mapping: spec, ...sample, triggerId: state.trigger.id };
  try {
    const result = await state.api.post("/mappings/preview", body, BACKGROUND); // run after typing: no click
    if (run !== state.previewRun) return; // a later edit has been sent since
    preview.result(result);
    sendTest.ready(state.api, body, result);
    mapping.markLine(result.error?.line);
    mapping.noteFields(leftOutFields(spec, result.mapped ?? result.output)); // before the variables' defaults
  } catch (error) {
    if (run !== state.previewRun) return;
    preview.refused(error);
    mapping.markLine(error.line);
    mapping.noteFields(fieldError(spec, error));
  }
}

/** What the preview runs on: the sample picked (a webhook's), or the request made of the typed sample;
 * null, with the reason shown, when there is none. */
function previewSample() {
  if (hasHook(state.trigger)) {
    if (state.sampleId) return { sampleId: state.sampleId };
    preview.idle("Pick or capture a sample to preview the mapping.");
    return null;
  }
  const request = sampleBody.request();
  if (request) return { request };
  preview.idle("Fix the sample's JSON to preview the mapping.");
  return null;
}

// --- Wiring ------------------------------------------------------------------------------------------

async function copyUrl() {
  const field = byId("hook-url");
  try {
    await navigator.clipboard.writeText(field.value);
    say(byId("mode-status"), "URL copied.");
  } catch {
    field.select(); // no clipboard access: selected, for Ctrl+C
    say(byId("mode-status"), "Press Ctrl+C to copy the selected URL.");
  }
}

byId("signin").addEventListener("submit", signIn);
byId("reauth-form").addEventListener("submit", signInAgain);
byId("token-refused-signin").addEventListener("click", () => askToken(state.refusal));
for (const button of [byId("signout"), byId("reauth-signout")]) {
  button.addEventListener("click", () => {
    if (isDirty() && !confirm("Discard the unsaved changes to this mapping?")) return;
    signOut("");
  });
}
byId("reload-flows").addEventListener("click", loadFlows);
byId("copy-url").addEventListener("click", copyUrl);
byId("mode").addEventListener("change", (event) => setMode(event.target.value));
byId("save").addEventListener("click", save);
byId("conflict-reload").addEventListener("click", reloadSaved);
byId("conflict-overwrite").addEventListener("click", overwrite);
byId("conflict-dismiss").addEventListener("click", hideConflict);
window.addEventListener("hashchange", openFromHash);
window.addEventListener("focus", rereadOnReturn);
document.addEventListener("visibilitychange", rereadOnReturn);
window.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "s") {
    event.preventDefault();
    save();
  }
});
window.addEventListener("beforeunload", (event) => {
  if (isDirty()) event.preventDefault();
});

const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
if (session) start(api(session.token, session.env));
