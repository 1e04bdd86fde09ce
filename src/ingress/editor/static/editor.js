// The mapping editor: sign in with the admin token, pick a trigger, edit its mapping against a sample
// with a live preview, save. It uses only the public management API.

import { Api, triggerPath } from "./api.js";
import { byId, canonical, clock, h, say } from "./dom.js";
import { hasHook, hasMapping, identity } from "./kinds.js";
import { MappingForm } from "./mapping.js";
import { Preview } from "./preview.js";
import { SampleBody } from "./sample-body.js";
import { SamplesPanel } from "./samples.js";

const SESSION_KEY = "flowhook.editor"; // sessionStorage only: the token leaves with the tab
const PREVIEW_DELAY_MS = 300;

const state = {
  api: null,
  flows: [], // [{flow, triggers}] with the triggers that have a mapping
  trigger: null,
  flow: null,
  saved: null, // canonical JSON of the saved mapping
  sampleId: null,
  previewTimer: null,
  previewRun: 0, // only the answer to the latest preview is shown
};

const mapping = new MappingForm(() => {
  showDirty();
  schedulePreview();
});
const preview = new Preview();
const samples = new SamplesPanel((sampleId) => {
  state.sampleId = sampleId;
  schedulePreview();
});
const sampleBody = new SampleBody(schedulePreview);

// --- Sign-in -----------------------------------------------------------------------------------------

function api(token, env) {
  return new Api(token, env, (error) => signOut(`Signed out: ${error.describe()}`));
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

function signOut(message) {
  sessionStorage.removeItem(SESSION_KEY);
  samples.close();
  state.api = null;
  state.trigger = null;
  state.saved = null;
  byId("workspace").hidden = true;
  byId("session").hidden = true;
  byId("signin").hidden = false;
  byId("intro").hidden = false;
  say(byId("signin-error"), message);
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
  let trigger;
  let flow;
  try {
    trigger = await state.api.get(triggerPath(id));
    if (!hasMapping(trigger)) {
      say(failed, `${trigger.id} is the ${trigger.type} trigger of its flow: it has no mapping to edit.`);
      return;
    }
    flow = await state.api.get(`/action-flows/${encodeURIComponent(trigger.flowId)}`);
  } catch (error) {
    say(failed, `Could not open trigger ${id}: ${error.describe()}`);
    return;
  }
  samples.close();
  state.previewRun += 1;
  state.trigger = trigger;
  state.flow = flow;
  state.sampleId = null;
  byId("pick-trigger").hidden = true;
  byId("trigger").hidden = false;
  byId("samples-pane").hidden = false;
  byId("trigger-title").textContent = `Trigger ${trigger.id}`;
  byId("trigger-flow").textContent = flow.name ?? flow.id;
  const hook = hasHook(trigger);
  say(byId("trigger-identity"), hook ? "" : identity(trigger));
  byId("url-row").hidden = !hook;
  byId("hook-samples").hidden = !hook;
  byId("typed-sample").hidden = hook;
  byId("hook-url").value = hook ? trigger.url : "";
  byId("mode").value = trigger.mode;
  say(byId("mode-status"), "");
  say(byId("save-status"), "");
  showModeWarning();
  loadSaved(trigger.mapping);
  renderFlows();
  if (hook) {
    await samples.open(state.api, trigger);
  } else {
    sampleBody.open(trigger);
    schedulePreview();
  }
}

function loadSaved(spec) {
  mapping.load(spec);
  state.saved = canonical(mapping.spec());
  showDirty();
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

async function changeMode() {
  const select = byId("mode");
  const status = byId("mode-status");
  status.textContent = "Saving…";
  status.hidden = false;
  try {
    state.trigger = await state.api.patch(triggerPath(state.trigger.id), { mode: select.value });
    status.textContent = `Mode saved: ${state.trigger.mode} (${clock(state.trigger.updatedAt)})`;
    updateListed(state.trigger);
    if (hasHook(state.trigger)) samples.update(state.trigger);
  } catch (error) {
    status.textContent = `Mode not changed: ${error.describe()}`;
    select.value = state.trigger.mode;
  }
  showModeWarning();
}

// --- Save --------------------------------------------------------------------------------------------

function isDirty() {
  return state.saved !== null && canonical(mapping.spec()) !== state.saved;
}

function showDirty() {
  byId("dirty").hidden = !isDirty();
}

async function save() {
  if (!state.trigger) return;
  const status = byId("save-status");
  say(status, "Saving…");
  const spec = mapping.spec();
  try {
    state.trigger = await state.api.patch(triggerPath(state.trigger.id), { mapping: spec });
  } catch (error) {
    say(status, `Not saved: ${error.describe()}`);
    status.dataset.state = "failed";
    if (error.line) mapping.markLine(error.line);
    return;
  }
  state.saved = canonical(spec);
  showDirty();
  say(status, `Saved at ${clock(state.trigger.updatedAt)}`);
  status.dataset.state = "ok";
  updateListed(state.trigger);
}

// --- Preview -----------------------------------------------------------------------------------------

function schedulePreview() {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(runPreview, PREVIEW_DELAY_MS);
}

async function runPreview() {
  const run = ++state.previewRun;
  if (!state.trigger) return;
  const sample = previewSample();
  if (!sample) return;
  preview.running();
  const body = { mapping: mapping.spec(), ...sample, flowId: state.trigger.flowId };
  try {
    const result = await state.api.post("/mappings/preview", body);
    if (run !== state.previewRun) return; // a later edit has been sent since
    preview.result(result);
    mapping.markLine(result.error?.line);
  } catch (error) {
    if (run !== state.previewRun) return;
    preview.refused(error);
    mapping.markLine(error.line);
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
byId("signout").addEventListener("click", () => {
  if (isDirty() && !confirm("Discard the unsaved changes to this mapping?")) return;
  signOut("");
});
byId("reload-flows").addEventListener("click", loadFlows);
byId("copy-url").addEventListener("click", copyUrl);
byId("mode").addEventListener("change", changeMode);
byId("save").addEventListener("click", save);
window.addEventListener("hashchange", openFromHash);
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
