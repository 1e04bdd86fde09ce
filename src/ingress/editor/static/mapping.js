// The mapping form: a kind, and for each kind what it needs. Each kind keeps what was typed for it, so
// switching kinds back and forth loses nothing; `spec()` is the mapping as the API takes it.

import { byId, h, say } from "./dom.js";

const STARTER_SOURCE = `function map(request) {
  return {
    targetUserIds: [request.body.userId],
    variables: {},
  };
}
`;
const INDENT = "  ";
const MODIFIERS = new Set(["Shift", "Control", "Alt", "Meta"]); // pressed alone, they are part of the next key

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
    this.rowsMade = 0; // numbers the ids of the rows' notes, unique in the page
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
    const noteId = `field-note-${(this.rowsMade += 1)}`;
    const row = h(
      "tr",
      {},
      h("td", {}, h("input", { type: "text", value: key, "aria-label": `Output key ${number}`, spellcheck: "false" })),
      h(
        "td",
        {},
        h("input", {
          type: "text",
          value: expression,
          "aria-label": `Expression ${number}`,
          "aria-describedby": noteId,
          spellcheck: "false",
          class: "mono",
        }),
        h("span", { id: noteId, class: "field-note small", hidden: true }),
      ),
      h("td", {}, h("button", { type: "button", "aria-label": `Remove field ${number}`, onclick: () => this.removeField(row) }, "Remove")),
    );
    this.fields.append(row);
    return row;
  }

  removeField(row) {
    row.remove();
    this.changed();
  }

  /** Say next to each row of the fields form what the last preview found about it: `notes` maps an
   * output key to `{text, error}` (an expression that does not compile is marked as invalid). Rows of other
   * keys are cleared, and so is everything for `new Map()`. */
  noteFields(notes) {
    for (const row of this.fields.rows) {
      const [key, expression] = row.querySelectorAll("input");
      const note = notes.get(key.value.trim());
      say(row.querySelector(".field-note"), note?.text);
      row.classList.toggle("error-row", Boolean(note?.error));
      if (note?.error) expression.setAttribute("aria-invalid", "true");
      else expression.removeAttribute("aria-invalid");
    }
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

  /** As in any code editor, Tab indents (the selected lines, if any) and Shift+Tab dedents; Escape then Tab
   * (or Shift+Tab) moves the focus on, so the keyboard is never trapped. */
  key(event) {
    if (event.key === "Escape") {
      this.leaveOnTab = true;
      return;
    }
    if (MODIFIERS.has(event.key)) return; // Escape, Shift, Tab is Escape then Shift+Tab
    const leave = this.leaveOnTab;
    this.leaveOnTab = false;
    if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey || leave) return;
    event.preventDefault();
    const { selectionStart, selectionEnd } = this.source;
    if (event.shiftKey) this.reindent(dedent);
    else if (selectionStart !== selectionEnd) this.reindent((line) => (line ? INDENT + line : line));
    else this.replace(selectionStart, selectionEnd, INDENT);
  }

  /** Rewrite each line the selection touches (or the caret's line) with `change`, keeping the selection on
   * the same text. A selection that ends at the start of a line leaves that line alone; empty lines are
   * not indented. */
  reindent(change) {
    const { value, selectionStart: start, selectionEnd: end } = this.source;
    const first = start === 0 ? 0 : value.lastIndexOf("\n", start - 1) + 1;
    const lastEnd = end > start && value[end - 1] === "\n" ? end - 1 : end;
    const found = value.indexOf("\n", lastEnd);
    const blockEnd = found === -1 ? value.length : found;
    const lines = value.slice(first, blockEnd).split("\n");
    const changed = lines.map(change);
    const text = changed.join("\n");
    if (text === value.slice(first, blockEnd)) return;
    const shift = changed[0].length - lines[0].length;
    this.replace(first, blockEnd, text);
    const newStart = start === first ? first : Math.max(first, start + shift); // whole lines stay selected
    this.source.setSelectionRange(newStart, Math.max(newStart, end + text.length - (blockEnd - first)));
  }

  /** Put `text` in place of the source between `start` and `end`. insertText keeps the browser's undo history
   * (Ctrl+Z brings the text back); setRangeText is the fallback where it is gone. */
  replace(start, end, text) {
    this.source.setSelectionRange(start, end);
    if (!document.execCommand("insertText", false, text)) {
      this.source.setRangeText(text, start, end, "end");
      this.changed();
    }
  }
}

/** Notes for the field rows of `spec` (MappingForm.noteFields) after a preview answered `output`: a field the
 * output lacks evaluated to null and was left out, which a required one's "missing" error alone does not say.
 * `output` is the mapping's own, before flow-variable defaults (the preview's `mapped`): a default filled in
 * for a variable left out would hide that it was. */
export function leftOutFields(spec, output) {
  const notes = new Map();
  if (!spec.fields || !isObject(output)) return notes;
  const step = (value, part) => (isObject(value) && part in value ? value[part] : undefined);
  for (const key of Object.keys(spec.fields)) {
    const found = key.split(".").reduce(step, output); // a dotted key is nested in the output
    if (found === undefined) notes.set(key, { text: "evaluated to null — left out", error: false });
  }
  return notes;
}

/** The note for the field row an API error points at (`$.fields['key']`: a JMESPath expression that does not
 * compile), with the column it names; the error itself is in the preview. */
export function fieldError(spec, apiError) {
  const notes = new Map();
  const paths = (key) => [`$.fields['${key}']`, `$.fields[${JSON.stringify(key)}]`]; // Python's quotes, or JSON's
  const key = Object.keys(spec.fields ?? {}).find((candidate) => paths(candidate).includes(apiError.path));
  const column = apiError.column ? ` (column ${apiError.column})` : "";
  if (key !== undefined) notes.set(key, { text: `Does not compile${column}`, error: true }); // the preview says why
  return notes;
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** A line without its first level of indentation (two spaces, one space, or a tab). */
const dedent = (line) => line.replace(/^(?: {1,2}|\t)/, "");
