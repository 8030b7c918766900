// Leads waiting to be sent, kept in localStorage so a closed tab or a dead network loses nothing.
// Each keeps the Idempotency-Key of its draft: a lead whose answer was lost is sent again and
// the API answers with the lead it already made, never a second one.
import { api, stored } from "./common.js";

const OUTBOX = "gvn.scout.outbox";

export const items = () => stored(OUTBOX, []);
const store = (list) => localStorage.setItem(OUTBOX, JSON.stringify(list));

export function add(item) {
  store([...items().filter((other) => other.key !== item.key), item]);
}

export function remove(key) {
  store(items().filter((item) => item.key !== key));
}

export function update(key, change) {
  store(items().map((item) => (item.key === key ? { ...item, ...change } : item)));
}

// One item's fate: "sent", "duplicate", "invalid", "unauthorized", or "later" (try again).
async function send(item) {
  let answer;
  try {
    answer = await api("POST", "/v1/leads", { body: item.body, headers: { "Idempotency-Key": item.key } });
  } catch {
    return { outcome: "later" };
  }
  if (answer.status === 201) return { outcome: "sent", lead: answer.data };
  if (answer.status === 409 && answer.data?.candidates) return { outcome: "duplicate", problem: answer.data };
  if (answer.status === 401 || answer.status === 403) return { outcome: "unauthorized", problem: answer.data };
  if (answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
    return { outcome: "invalid", problem: answer.data };
  }
  return { outcome: "later" }; // 5xx or rate limited: the server is not saying no
}

let running = null;

// Sends every queued lead that waits on nobody; `report(item, result)` hears each outcome.
// Calls while a round is under way join it, so no lead is ever in flight twice from one tab.
export function flush(report) {
  running ??= sendAll(report).finally(() => { running = null; });
  return running;
}

async function sendAll(report) {
  const tried = new Set(); // re-read each turn: a lead queued mid-round still goes in this one
  for (;;) {
    const item = items().find((i) => !i.problem && !tried.has(i.key));
    if (!item || !navigator.onLine) return;
    tried.add(item.key);
    const result = await send(item);
    if (result.outcome === "sent") remove(item.key);
    else if (result.outcome === "duplicate" || result.outcome === "invalid") {
      update(item.key, { problem: { kind: result.outcome, ...result.problem } });
    }
    else if (result.outcome === "later") update(item.key, { failed_at: new Date().toISOString() });
    report(item, result);
    if (result.outcome === "later" || result.outcome === "unauthorized") return;
  }
}
