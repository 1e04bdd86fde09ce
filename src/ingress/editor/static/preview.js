// The preview pane: what `POST /mappings/preview` answered, or why it could not run.

import { byId, h, say } from "./dom.js";

const ms = (result) => `${result.durationMs} ms`;

/** Whose flow variables the output was judged with: those the trigger's requests apply (its mode's version). */
const VARIABLES = { draft: "the draft's variables", published: "the published version's variables" };

function verdict(result) {
  if (result.skipped) return `Skipped: the mapping returned null, so no flow would start · ${ms(result)}`;
  if (result.ok) return `Valid trigger request · ${ms(result)}`;
  if (result.error) return `The mapping failed · ${ms(result)}`;
  return `The output is not a valid trigger request · ${ms(result)}`;
}

function location(error) {
  if (!error.line) return "";
  return ` (line ${error.line}${error.column ? `, column ${error.column}` : ""})`;
}

export class Preview {
  constructor() {
    this.status = byId("preview-status");
    this.error = byId("preview-error");
    this.problems = byId("validation-errors");
    this.output = byId("output");
    this.console = byId("console");
  }

  /** Nothing to show yet, and why. */
  idle(text) {
    this.clear();
    this.status.textContent = text;
    this.status.dataset.state = "idle";
  }

  running() {
    this.status.textContent = "Running…";
    this.status.dataset.state = "running";
  }

  /** A MappingResult: `{ok, skipped, output, error, validationErrors, logs, durationMs}`. */
  result(result) {
    this.clear();
    const variables = VARIABLES[result.variablesOf];
    this.status.textContent = variables ? `${verdict(result)} · ${variables}` : verdict(result);
    this.status.dataset.state = result.ok || result.skipped ? "ok" : "failed";
    if (result.error) {
      const { type, message, stack } = result.error;
      this.error.append(h("p", {}, `${type}: ${message}${location(result.error)}`));
      if (stack) this.error.append(h("pre", { class: "mono" }, stack));
      this.error.hidden = false;
    }
    const problems = result.validationErrors ?? [];
    this.problems.append(
      ...problems.map((problem) => h("li", {}, h("code", { class: "path" }, problem.path), " ", problem.message)),
    );
    this.problems.hidden = problems.length === 0;
    const output = result.output ?? null;
    this.output.textContent = output === null ? "(no output)" : JSON.stringify(output, null, 2);
    const logs = result.logs ?? [];
    this.console.append(
      ...logs.map((line) =>
        h("li", { "data-level": line.level }, h("span", { class: "level" }, line.level), " ", h("span", { class: "line" }, line.message)),
      ),
    );
    if (logs.length === 0) this.console.append(h("li", { class: "muted" }, "(nothing logged)"));
  }

  /** The API refused to run it: a mapping that does not compile (422 with line and column), a body that does not parse. */
  refused(apiError) {
    this.clear();
    const compile = apiError.code === "invalid_mapping";
    this.status.textContent = compile ? "The mapping does not compile" : "The preview could not run";
    this.status.dataset.state = "failed";
    say(this.error, apiError.describe());
  }

  clear() {
    say(this.error, "");
    this.problems.replaceChildren();
    this.problems.hidden = true;
    this.output.textContent = "";
    this.console.replaceChildren();
  }
}
