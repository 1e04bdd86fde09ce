// The mapping form: a kind, and for each kind what it needs. Each kind keeps what was typed for it, so
// switching kinds back and forth loses nothing; `spec()` is the mapping as the API takes it.

import { byId, h } from "./dom.js";

const STARTER_SOURCE = `function map(request) {
  return {
    targetUserIds: [request.body.userId],
    variables: {},
  };
}
`;
const INDENT = "  ";

export class MappingForm {
  constructor(onChange) {
    this.onChange = onChange;
    this.kind = byId("kind");
    this.source = byId("source");
    this.gutter = byId("gutter");
    this.fields = byId("fields");
    this.expression = byId("expression");
    this.errorLine = null;
    this.leaveOnTab = false;
    this.kind.addEventListener("change", () => this.changed());
    this.source.addEventListener("input", () => this.changed());
    this.source.addEventListener("scroll", () => (this.gutter.scrollTop = this.source.scrollTop));
    this.source.addEventListener("keydown", (event) => this.key(event));
    this.expression.addEventListener("input", () => this.changed());
    this.fields.addEventListener("input", () => this.changed());
    for (const radio of this.formRadios()) radio.addEventListener("change", () => this.changed());
    byId("add-field").addEventListener("click", () => {
      this.addField("", "").querySelector("input").focus();
      this.changed();
    });
  }

  formRadios() {
    return document.querySelectorAll('input[name="jmes-form"]');
  }

  /** Fill the form from a saved spec; kinds it does not use get a starting point. */
  load(spec) {
    this.kind.value = spec.kind;
    this.source.value = spec.kind === "javascript" ? spec.source : STARTER_SOURCE;
    const byExpression = spec.kind === "jmespath" && typeof spec.expression === "string";
    this.expression.value = byExpression ? spec.expression : "{targetUserIds: [body.userId]}";
    for (const radio of this.formRadios()) radio.checked = radio.value === (byExpression ? "expression" : "fields");
    this.fields.replaceChildren();
    const fields = spec.kind === "jmespath" && spec.fields ? spec.fields : { targetUserIds: "body.userId" };
    for (const [key, expression] of Object.entries(fields)) this.addField(key, expression);
    this.errorLine = null;
    this.layout();
  }

  spec() {
    const kind = this.kind.value;
    if (kind === "javascript") return { kind, source: this.source.value };
    if (kind === "passthrough") return { kind };
    if (this.jmesForm() === "expression") return { kind, expression: this.expression.value };
    const fields = {};
    for (const row of this.fields.rows) {
      const [key, expression] = row.querySelectorAll("input");
      if (key.value.trim()) fields[key.value.trim()] = expression.value;
    }
    return { kind, fields };
  }

  jmesForm() {
    return document.querySelector('input[name="jmes-form"]:checked').value;
  }

  addField(key, expression) {
    const number = this.fields.rows.length + 1;
    const row = h(
      "tr",
      {},
      h("td", {}, h("input", { type: "text", value: key, "aria-label": `Output key ${number}`, spellcheck: "false" })),
      h("td", {}, h("input", { type: "text", value: expression, "aria-label": `Expression ${number}`, spellcheck: "false", class: "mono" })),
      h("td", {}, h("button", { type: "button", "aria-label": `Remove field ${number}`, onclick: () => this.removeField(row) }, "Remove")),
    );
    this.fields.append(row);
    return row;
  }

  removeField(row) {
    row.remove();
    this.changed();
  }

  /** Mark the source line an error points at (null clears it). */
  markLine(line) {
    this.errorLine = line ?? null;
    this.drawGutter();
  }

  changed() {
    this.layout();
    this.onChange();
  }

  layout() {
    const kind = this.kind.value;
    byId("javascript-editor").hidden = kind !== "javascript";
    byId("jmespath-editor").hidden = kind !== "jmespath";
    byId("passthrough-help").hidden = kind !== "passthrough";
    byId("fields-form").hidden = this.jmesForm() !== "fields";
    byId("expression-form").hidden = this.jmesForm() !== "expression";
    this.drawGutter();
  }

  drawGutter() {
    const count = this.source.value.split("\n").length;
    const numbers = [];
    for (let line = 1; line <= count; line += 1) {
      numbers.push(h("span", { class: line === this.errorLine ? "error-line" : null }, `${line}\n`));
    }
    this.gutter.replaceChildren(...numbers);
    this.gutter.scrollTop = this.source.scrollTop;
  }

  /** Tab indents (as in any code editor); Escape then Tab moves the focus on, so the keyboard is never trapped. */
  key(event) {
    if (event.key === "Escape") {
      this.leaveOnTab = true;
      return;
    }
    const leave = this.leaveOnTab;
    this.leaveOnTab = false;
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey || leave) return;
    event.preventDefault();
    // insertText keeps the browser's undo history; setRangeText is the fallback where it is gone.
    if (!document.execCommand("insertText", false, INDENT)) {
      this.source.setRangeText(INDENT, this.source.selectionStart, this.source.selectionEnd, "end");
      this.changed();
    }
  }
}
