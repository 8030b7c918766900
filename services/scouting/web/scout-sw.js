// Lets the scout's page open with no network (a phone reopening a discarded tab in the field):
// the page and its files come from this cache when the network fails. API calls are never
// cached or replayed here: leads wait in localStorage (outbox.js) until they can be sent.
const CACHE = "gvn-scout-v1";
const SHELL = [
  "/scout", "/static/style.css", "/static/icon.svg", "/static/markets.json", "/static/common.js",
  "/static/lead-form.js", "/static/my-leads.js", "/static/outbox.js", "/static/scout.js",
];
const PATIENCE_MS = 5000; // a network that neither answers nor fails should not blank the page

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

// Network first, so a new release shows at once; the cache answers only when the network fails.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(fetch(event.request, { signal: AbortSignal.timeout(PATIENCE_MS) })
    .then((response) => {
      if (response.ok) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)));
      }
      return response;
    })
    .catch(() => caches.match(url.pathname)));
});
