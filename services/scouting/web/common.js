// Shared by the scout and triage pages: the API key, calls to the JSON API, safe DOM building.
// User text only ever reaches the page as text nodes or attributes: never through innerHTML.

const KEY = "gvn.apiKey";
const TIMEOUT_MS = 15000; // a phone on a dying network can hang a request for minutes

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

export const KINDS = {
  market_need: "Market need", distributor_candidate: "Distributor candidate",
  partner_candidate: "Partner candidate", intermediary: "Intermediary",
  event_opportunity: "Event opportunity",
};
// Why the API thinks two leads are one (DuplicateCandidate.why), in the scout's words.
export const WHY = {
  same_counterpart: "same organisation", same_website: "same website", similar_text: "similar wording",
};

export const apiKey = () => localStorage.getItem(KEY);

// A stored JSON value, or `fallback` when absent or mangled (a broken entry must not kill the page).
export function stored(name, fallback) {
  try {
    return JSON.parse(localStorage.getItem(name)) ?? fallback;
  } catch {
    return fallback;
  }
}

// A link only if it is plainly http(s): a "javascript:" URL in data must never become a link.
export const safeUrl = (url) => (/^https?:\/\//i.test(url ?? "") ? url : null);

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text.replaceAll("_", " "));
}

export function shortDate(iso) {
  const date = new Date(iso);
  return isNaN(date) ? "" : date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

// RFC 4122 v4 from getRandomValues: crypto.randomUUID is missing on plain-http origins.
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Answers {status, ok, data}; throws only when the network failed (offline, dropped, timed out).
export async function api(method, path, { body, headers = {} } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", Authorization: `Bearer ${apiKey() ?? ""}`, ...headers },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, data };
}

export function announce(text, tone = "info") {
  const status = document.getElementById("status");
  status.className = `status status-${tone}`;
  status.textContent = text;
}

export function problemText(answer) {
  if (answer.status === 401) return "Your API key was not accepted: enter it again.";
  return answer.data?.detail ?? `The server answered ${answer.status}.`;
}

// The key is typed once and kept on this device; `onKey` runs whenever one is (re)entered.
export function keyPanel(onKey) {
  const panel = document.getElementById("key-panel");
  const show = (asking) => {
    const key = apiKey();
    if (key && !asking) {
      panel.replaceChildren(h("p", { class: "key-line" },
        `Signed in with key ${key.slice(0, 16)}…`, " ",
        h("button", { type: "button", class: "link", onclick: () => show(true) }, "Change key"),
        h("button", {
          type: "button", class: "link",
          onclick: () => { localStorage.removeItem(KEY); show(true); }, // a shared phone
        }, "Forget key")));
      return;
    }
    const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    panel.replaceChildren(h("form", {
      class: "key-form",
      onsubmit: (event) => {
        event.preventDefault();
        localStorage.setItem(KEY, input.value.trim());
        show(false);
        onKey();
      },
    }, h("label", { for: "api-key" }, "Your API key"), input, h("button", { type: "submit" }, "Save key")));
  };
  show(!apiKey());
  return { ask: () => show(true) };
}
