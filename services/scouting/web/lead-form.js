// The scout's form: the draft kept in localStorage, the LeadCreate body, per-field problems.
import { newId, stored } from "./common.js";

const DRAFT = "gvn.scout.draft";

// Field values as typed, so a restored draft looks exactly as the scout left it.
export function readFields(form) {
  const fields = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") {
      fields[el.name] ??= [];
      if (el.checked) fields[el.name].push(el.value);
    } else {
      fields[el.name] = el.value;
    }
  }
  return fields;
}

export function writeFields(form, fields) {
  for (const el of form.elements) {
    if (!el.name || !(el.name in fields)) continue;
    if (el.type === "checkbox") el.checked = fields[el.name].includes(el.value);
    else el.value = fields[el.name];
  }
}

export const loadDraft = () => stored(DRAFT, null);
export const clearDraft = () => localStorage.removeItem(DRAFT);

// The Idempotency-Key is born with the draft: every send of this lead carries the same one.
export function saveDraft(fields, key = loadDraft()?.key ?? newId()) {
  const draft = { key, fields, saved_at: new Date().toISOString() };
  localStorage.setItem(DRAFT, JSON.stringify(draft));
  return draft;
}

const text = (value) => (value ?? "").trim() || null;
const drop = (object) => Object.fromEntries(Object.entries(object).filter(([, v]) => v !== null));

function group(fields, prefix, names) {
  const part = drop(Object.fromEntries(names.map((n) => [n, text(fields[`${prefix}.${n}`])])));
  return Object.keys(part).length ? part : null;
}

export function leadBody(fields) {
  const counterpart = group(fields, "counterpart", ["name", "website", "country"]);
  if (counterpart?.country) counterpart.country = counterpart.country.toUpperCase();
  const evidence = text(fields.evidence_links);
  return drop({
    kind: fields.kind,
    title: text(fields.title) ?? "",
    description: text(fields.description) ?? "",
    target_market: fields.target_market,
    application_areas: fields.application_areas ?? [],
    technologies: (fields.technologies ?? "").split(",").map((t) => t.trim()).filter(Boolean),
    counterpart,
    counterpart_contact: group(fields, "counterpart_contact", ["name", "email", "phone"]),
    urgency: fields.urgency || "medium",
    source: text(fields.source),
    source_date: text(fields.source_date),
    evidence_links: evidence ? [evidence] : [],
    duplicate_check: "warn",
  });
}

export function clearErrors(form) {
  for (const box of form.querySelectorAll("[data-field]")) showError(box, null);
  form.querySelector(".form-error").hidden = true;
}

function showError(box, message) {
  const note = box.querySelector(".error");
  note.id ||= `${box.dataset.field.replaceAll(".", "-")}-error`;
  note.textContent = message ?? "";
  note.hidden = !message;
  for (const input of box.querySelectorAll("input, select, textarea")) {
    // Screen readers read the message with the field, next to any hint it already has.
    const described = new Set((input.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
    if (message) described.add(note.id);
    else described.delete(note.id);
    if (described.size) input.setAttribute("aria-describedby", [...described].join(" "));
    else input.removeAttribute("aria-describedby");
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// problem+json `errors` name locations like "body.counterpart.website" or "body.technologies.3".
export function showErrors(form, errors) {
  clearErrors(form);
  const general = [];
  for (const { location, message } of errors) {
    const path = location.split(".").slice(1).filter((part) => !/^\d+$/.test(part));
    const box = form.querySelector(`[data-field="${CSS.escape(path.join("."))}"]`)
      ?? form.querySelector(`[data-field^="${CSS.escape(path[0] ?? "")}"]`);
    const plain = message.replace(/^Value error, /, "");
    const clean = plain.charAt(0).toUpperCase() + plain.slice(1);
    if (box) showError(box, clean);
    else general.push(path.length ? `${path.join(".")}: ${clean}` : clean);
  }
  const note = form.querySelector(".form-error");
  note.textContent = general.join(" ") || "Please correct the fields marked below.";
  note.hidden = false;
  form.querySelector("[aria-invalid=true]")?.focus();
}
