// Reale's service worker: the app shell and hashed assets from the cache, everything
// else from the network. Pages are never cached (they hold private data): a navigation
// that cannot reach the server shows the cached offline page instead. Event streams,
// files and every other request are left alone.
"use strict";

const CACHE = "reale-{{ version }}";
const SHELL = {{ shell }};
const OFFLINE = "{{ offline }}";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

// A new deploy's worker drops the caches of the old ones.
self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("reale-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.open(CACHE).then((cache) => cache.match(OFFLINE))));
    return;
  }
  // Hashed names never change content: cache-first is always right for them.
  if (url.pathname.startsWith("/assets/")) {
    event.respondWith(caches.open(CACHE).then((cache) => cache.match(request).then((hit) => hit || fetch(request).then((response) => {
      if (response.ok) cache.put(request, response.clone());
      return response;
    }))));
  }
});

// Web Push: the server sends {title, body, url} (push::sender); show it, and open or
// focus that conversation when it is clicked.
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (_) { data = { body: event.data ? event.data.text() : "" }; }
  const title = data.title || "Reale";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    icon: {{ icon }},
    data: { url: data.url || "/" },
    tag: data.url || undefined,
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin);
  if (target.origin !== self.location.origin) return;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
    for (const client of windows) {
      if (new URL(client.url).pathname === target.pathname && "focus" in client) return client.focus();
    }
    for (const client of windows) {
      if ("navigate" in client && "focus" in client) return client.navigate(target.href).then((c) => (c || client).focus());
    }
    return self.clients.openWindow(target.href);
  }));
});
