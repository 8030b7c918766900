// "My leads": the key's own leads (the API shows a scout nothing else), newest first, paged.
import { api, badge, h, KINDS, problemText, shortDate } from "./common.js";

let cursor = null;

// Answers the API's answer (null when the network failed), so the page can react to a 401.
export async function loadLeads({ more = false } = {}) {
  const list = document.getElementById("leads");
  const button = document.getElementById("more");
  const query = new URLSearchParams({ limit: "20" });
  if (more && cursor) query.set("cursor", cursor);
  let answer;
  try {
    answer = await api("GET", `/v1/leads?${query}`);
  } catch {
    if (!more) list.replaceChildren(note("Offline: the list refreshes when the network is back."));
    return null;
  }
  if (!answer.ok) {
    list.replaceChildren(note(problemText(answer)));
    return answer;
  }
  const rows = answer.data.items.map(leadItem);
  if (more) list.append(...rows);
  else list.replaceChildren(...(rows.length ? rows : [note("No leads yet.")]));
  cursor = answer.data.next_cursor;
  button.hidden = !cursor;
  return answer;
}

const note = (text) => h("li", { class: "empty" }, text);

function leadItem(lead) {
  const meta = [lead.target_market, KINDS[lead.kind] ?? lead.kind, lead.counterpart_name,
    shortDate(lead.submitted_at)].filter(Boolean).join(" · ");
  return h("li", { class: "lead", "data-lead-id": lead.id },
    h("div", { class: "lead-head" },
      h("h3", {}, lead.title),
      h("span", { class: "badges" }, badge(lead.status),
        lead.stale && h("span", { class: "badge badge-stale", title: "Nobody acted on it for a while" }, "stale"))),
    h("p", { class: "meta" }, meta),
    lead.status_reason && h("p", { class: "meta" }, `Reason: ${lead.status_reason.replaceAll("_", " ")}`));
}
