// The manager's triage queue: submitted leads, their likely duplicates, one click to decide.
import {
  announce, api, apiKey, badge, h, KINDS, keyPanel, problemText, safeUrl, shortDate, WHY,
} from "./common.js";

const REASONS = {
  out_of_scope: "Out of scope", insufficient_evidence: "Insufficient evidence",
  not_actionable: "Not actionable",
};
const key = keyPanel(() => loadQueue());
let cursor = null;

async function loadQueue({ more = false } = {}) {
  const query = new URLSearchParams({ status: "submitted", limit: "20" });
  if (more && cursor) query.set("cursor", cursor);
  let answer;
  try {
    answer = await api("GET", `/v1/leads?${query}`);
  } catch {
    return announce("Offline: the queue loads when the network is back.", "warn");
  }
  if (!answer.ok) {
    announce(problemText(answer), "error");
    if (answer.status === 401) key.ask();
    return;
  }
  const queue = document.getElementById("queue");
  const cards = answer.data.items.map(leadCard);
  if (more) queue.append(...cards);
  else queue.replaceChildren(...(cards.length ? cards : [h("p", { class: "empty" }, "Nothing waiting for triage.")]));
  cursor = answer.data.next_cursor;
  document.getElementById("more").hidden = !cursor;
}

function leadCard(lead) {
  const titleId = `lead-${lead.id}`;
  const meta = [lead.target_market, KINDS[lead.kind] ?? lead.kind, lead.counterpart_name,
    lead.counterpart_country, `${lead.urgency} urgency`, shortDate(lead.submitted_at)];
  const card = h("article", { class: "card lead-card", "aria-labelledby": titleId, "data-lead-id": lead.id },
    h("div", { class: "lead-head" }, h("h3", { id: titleId }, lead.title),
      h("span", { class: "badges" }, badge(lead.status), lead.stale && badge("stale"))),
    h("p", { class: "meta" }, meta.filter(Boolean).join(" · ")),
    lead.description && h("p", { class: "description" }, lead.description),
    tags(lead),
    links(lead),
    h("div", { class: "hints" }, h("p", { class: "meta" }, "Looking for duplicates…")),
    h("div", { class: "actions" }));
  renderActions(lead, card);
  loadHints(lead, card);
  return card;
}

function tags(lead) {
  const all = [...lead.application_areas.map((a) => a.replaceAll("_", " ")), ...lead.technologies];
  return all.length ? h("ul", { class: "tags", "aria-label": "Areas and technologies" }, all.map((t) => h("li", {}, t))) : null;
}

function links(lead) {
  const urls = [lead.counterpart_website, ...lead.evidence_links].map(safeUrl).filter(Boolean);
  if (!urls.length) return null;
  return h("p", { class: "links" }, urls.map((url) =>
    h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, new URL(url).hostname)));
}

function renderActions(lead, card) {
  const reason = h("select", { id: `reason-${lead.id}`, "aria-label": "Reason for rejecting" },
    Object.entries(REASONS).map(([value, label]) => h("option", { value }, label)));
  card.querySelector(".actions").replaceChildren(
    h("button", { type: "button", onclick: () => move(lead, card, { to: "qualified" }, "Qualified.") }, "Qualify"),
    h("span", { class: "reject" }, reason,
      h("button", {
        type: "button", class: "danger",
        onclick: () => move(lead, card, { to: "rejected", reason: reason.value }, `Rejected: ${REASONS[reason.value].toLowerCase()}.`),
      }, "Reject")));
}

// The lead's own fields as a LeadCreate, so the API compares it exactly as it compares new ones.
function asLeadCreate(lead) {
  const body = {
    kind: lead.kind, title: lead.title, description: lead.description, target_market: lead.target_market,
    application_areas: lead.application_areas, technologies: lead.technologies,
  };
  if (lead.counterpart_name) {
    body.counterpart = { name: lead.counterpart_name, website: lead.counterpart_website, country: lead.counterpart_country };
  }
  return body;
}

async function loadHints(lead, card) {
  const box = card.querySelector(".hints");
  const answer = await api("POST", "/v1/leads/duplicate-check", { body: asLeadCreate(lead) }).catch(() => null);
  if (!answer?.ok) return box.replaceChildren(h("p", { class: "meta" }, "Duplicate hints unavailable."));
  const hints = answer.data.filter((candidate) => candidate.id !== lead.id); // it resembles itself
  if (!hints.length) return box.replaceChildren(h("p", { class: "meta" }, "No likely duplicates."));
  box.replaceChildren(h("p", { class: "hints-title" }, "Possible duplicate of:"),
    h("ul", { class: "candidates" }, hints.map((hint) => h("li", {},
      h("span", {}, h("strong", {}, hint.title), " ", badge(hint.status), " ",
        h("span", { class: "meta" }, WHY[hint.why] ?? hint.why)),
      h("button", {
        type: "button", class: "secondary small", "aria-label": `Duplicate of this: ${hint.title}`,
        onclick: () => move(lead, card, { to: "duplicate", duplicate_of: hint.id }, `Marked duplicate of “${hint.title}”.`),
      }, "Duplicate of this")))));
}

async function move(lead, card, transition, outcome) {
  const controls = card.querySelectorAll("button, select");
  controls.forEach((control) => { control.disabled = true; }); // one click, one request
  const answer = await api("POST", `/v1/leads/${lead.id}/transitions`, { body: transition }).catch(() => null);
  if (answer?.ok) {
    settle(card, answer.data.status, outcome);
    return announce(`“${lead.title}”: ${outcome}`, "ok");
  }
  if (answer?.status === 409 && answer.data?.status_now) {
    settle(card, answer.data.status_now, "Already decided by someone else.");
    return announce(`“${lead.title}” was already ${answer.data.status_now}.`, "warn");
  }
  controls.forEach((control) => { control.disabled = false; });
  announce(answer ? problemText(answer) : "Offline: nothing changed. Try again when the network is back.", "error");
  if (answer?.status === 401) key.ask();
}

function settle(card, status, outcome) {
  card.classList.add("decided");
  card.querySelector(".badges").replaceChildren(badge(status));
  card.querySelector(".hints").replaceChildren();
  card.querySelector(".actions").replaceChildren(h("p", { class: "outcome" }, outcome));
}

document.getElementById("refresh").addEventListener("click", () => loadQueue());
document.getElementById("more").addEventListener("click", () => loadQueue({ more: true }));
if (apiKey()) loadQueue();
