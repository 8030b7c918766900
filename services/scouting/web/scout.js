// The scout's page: a lead form that survives a dead network, the leads waiting to go, "my leads".
import { announce, apiKey, badge, h, keyPanel, problemText, WHY } from "./common.js";
import {
  clearDraft, clearErrors, leadBody, loadDraft, readFields, saveDraft, showErrors, writeFields,
} from "./lead-form.js";
import { loadLeads } from "./my-leads.js";
import * as outbox from "./outbox.js";

const form = document.getElementById("lead-form");
const key = keyPanel(() => { refreshLeads(); sendQueued(); });

async function refreshLeads(options) {
  const answer = await loadLeads(options);
  if (answer?.status === 401) key.ask();
}

function sendQueued() {
  renderOutbox();
  if (apiKey()) outbox.flush(onResult).then(renderOutbox);
}

function onResult(item, result) {
  const title = `“${item.body.title}”`;
  if (result.outcome === "sent") {
    announce(`Sent: ${title} is submitted.`, "ok");
    refreshLeads();
  } else if (result.outcome === "duplicate") {
    announce(`${title} looks like a lead already reported: see “Waiting to send”.`, "warn");
  } else if (result.outcome === "invalid") {
    announce(`${title} needs changes before it can be sent.`, "error");
    if (!loadDraft()) edit(outbox.items().find((i) => i.key === item.key));
  } else if (result.outcome === "unauthorized") {
    announce(problemText({ status: result.problem?.status ?? 401, data: result.problem }), "error");
    if (result.problem?.status !== 403) key.ask(); // a 403 is the key's role: typing it again won't help
  } else {
    announce("Queued, will send when back online.", "warn");
  }
}

// Back into the form with the server's per-field messages, keeping the lead's Idempotency-Key.
function edit(item) {
  const draft = loadDraft();
  if (draft && draft.key !== item.key && !confirm("Replace the draft you are typing?")) return;
  writeFields(form, item.fields);
  saveDraft(item.fields, item.key);
  outbox.remove(item.key);
  renderOutbox();
  const problem = item.problem ?? {};
  const general = [{ location: "body", message: problemText({ status: problem.status, data: problem }) }];
  showErrors(form, problem.errors?.length ? problem.errors : general);
}

function submitAnyway(item) {
  outbox.update(item.key, { body: { ...item.body, duplicate_check: "confirmed_new" }, problem: null });
  sendQueued();
}

function drop(item) {
  outbox.remove(item.key);
  announce(`Dropped “${item.body.title}”.`);
  renderOutbox();
}

function renderOutbox() {
  const items = outbox.items();
  document.getElementById("outbox").hidden = !items.length;
  document.getElementById("outbox-list").replaceChildren(...items.map(outboxItem));
  const network = document.getElementById("network");
  network.textContent = navigator.onLine ? "Online" : "Offline";
  network.className = `network ${navigator.onLine ? "online" : "offline"}`;
}

function outboxItem(item) {
  const button = (label, action, cls = "") => h("button", { type: "button", class: cls, onclick: () => action(item) }, label);
  const head = (status, kind) => h("div", { class: "lead-head" }, h("h3", {}, item.body.title), badge(status, kind));
  if (!item.problem) {
    return h("li", { class: "lead queued" }, head("queued"),
      h("p", { class: "meta" }, navigator.onLine && !item.failed_at ? "Sending…" : "Queued, will send when back online."));
  }
  if (item.problem.kind === "duplicate") {
    return h("li", { class: "lead attention" }, head("likely duplicate", "duplicate"),
      h("p", {}, "Already reported, it seems:"),
      h("ul", { class: "candidates" }, item.problem.candidates.map((c) =>
        h("li", {}, h("strong", {}, c.title), " ", badge(c.status), " ", h("span", { class: "meta" }, WHY[c.why] ?? c.why)))),
      h("div", { class: "actions" }, button("Submit anyway", submitAnyway), button("Drop it", drop, "secondary")));
  }
  return h("li", { class: "lead attention" }, head("needs changes", "rejected"),
    h("p", {}, item.problem.detail ?? "The server refused it."),
    h("div", { class: "actions" }, button("Edit", edit), button("Drop it", drop, "secondary")));
}

form.addEventListener("input", () => saveDraft(readFields(form)));
form.addEventListener("change", () => saveDraft(readFields(form)));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const draft = saveDraft(readFields(form)); // gives the lead its Idempotency-Key if it has none
  // Queued before the first attempt: a tab closed mid-request still has the lead to resend.
  outbox.add({ key: draft.key, fields: draft.fields, body: leadBody(draft.fields), problem: null });
  clearDraft();
  form.reset();
  clearErrors(form);
  announce(navigator.onLine ? "Sending…" : "Queued, will send when back online.", navigator.onLine ? "info" : "warn");
  sendQueued();
});
document.getElementById("discard").addEventListener("click", () => {
  if (!confirm("Discard this draft?")) return;
  clearDraft();
  form.reset();
  clearErrors(form);
});
document.getElementById("refresh").addEventListener("click", () => refreshLeads());
document.getElementById("more").addEventListener("click", () => refreshLeads({ more: true }));
window.addEventListener("online", () => { sendQueued(); refreshLeads(); });
window.addEventListener("offline", renderOutbox);
window.addEventListener("storage", renderOutbox); // another tab queued or sent a lead
setInterval(() => { if (outbox.items().some((i) => !i.problem)) sendQueued(); }, 30000);

// Markets configured beyond the programme's ten (EXTRA_MARKETS) become choosable too.
async function addMarkets() {
  const select = document.getElementById("f-market");
  try {
    const markets = await (await fetch("/static/markets.json")).json();
    const known = new Set([...select.options].map((o) => o.value));
    for (const code of markets) if (!known.has(code)) select.append(h("option", { value: code }, code));
    const wanted = loadDraft()?.fields.target_market; // a draft for a market only now listed
    if (wanted && select.value !== wanted) select.value = wanted;
  } catch {
    // offline: the programme's markets in the page are enough
  }
}

// Opens this page with no network (browsers allow workers on https and localhost only).
navigator.serviceWorker?.register("/static/scout-sw.js", { scope: "/scout" }).catch(() => {});
const today = new Date();
today.setMinutes(today.getMinutes() - today.getTimezoneOffset()); // the scout's date, not UTC's
document.getElementById("f-source-date").max = today.toISOString().slice(0, 10);
const draft = loadDraft();
if (draft) writeFields(form, draft.fields);
addMarkets();
renderOutbox();
if (apiKey()) { refreshLeads(); sendQueued(); }
