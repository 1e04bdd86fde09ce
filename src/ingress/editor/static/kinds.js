// The kinds of trigger that have a mapping: what identifies one in the list, and, for those without a
// hook (no captured samples), a typical request body its mapping sees, to preview against.

const now = () => new Date().toISOString();

/** An event as an event trigger's mapping sees it (docs/events.md). */
function event(eventName, properties) {
  return {
    id: "evt_sample",
    eventName,
    endUserId: "user-1",
    properties,
    metadata: {},
    timestamp: now(),
    eventSource: "live",
    flowId: null,
  };
}

/** What Journey Builder's execute call carries, with its `arguments` merged (docs/sfmc.md). */
function sfmcBody() {
  const inArguments = [{ userId: "0031x00000AbCdE" }, { plan: "pro" }];
  return {
    inArguments,
    outArguments: [],
    activityObjectID: "activity-object-1",
    journeyId: "journey-1",
    activityId: "activity-1",
    definitionInstanceId: "definition-instance-1",
    activityInstanceId: "activity-instance-1",
    keyValue: "0031x00000AbCdE",
    mode: 0,
    arguments: Object.assign({}, ...inArguments),
  };
}

/** One lead of a Marketo flow step batch (docs/marketo.md). */
function marketoBody() {
  const context = { subscription: { munchkinId: "123-ABC-456" } };
  return {
    lead: { id: 11, email: "ada@example.com", firstName: "Ada" },
    flowStepFields: { userIdField: "id" },
    campaign: { id: 1001, name: "Onboarding" },
    context,
    userId: "11",
  };
}

const KINDS = {
  webhook: { label: (trigger) => `hook …${trigger.hookId.slice(-6)}`, sample: null },
  event: {
    label: (trigger) => `event ${trigger.eventName}`,
    sample: (trigger) => event(trigger.eventName, {}),
  },
  segment: {
    label: (trigger) => `segment ${trigger.segmentId} · on ${trigger.on}`,
    sample: (trigger) =>
      event(`segment-${trigger.on}`, { segmentId: trigger.segmentId, segmentName: "Sample segment" }),
  },
  sfmc: { label: () => "SFMC activity", sample: sfmcBody },
  marketo: { label: () => "Marketo step", sample: marketoBody },
};

/** Whether `trigger` has a mapping the editor edits (an API trigger has none). */
export const hasMapping = (trigger) => Object.hasOwn(KINDS, trigger.type);

/** Whether its samples are captured or pasted through the API (only a webhook has a hook to capture). */
export const hasHook = (trigger) => trigger.type === "webhook";

/** What identifies `trigger` among its flow's. */
export const identity = (trigger) => KINDS[trigger.type].label(trigger);

/** A typical request body for a trigger without a hook. */
export const sampleBody = (trigger) => KINDS[trigger.type].sample(trigger);
