// Reale's hand-written script: only what HTML and htmx cannot do. Every page works without it.
"use strict";

function scrollToLatest() {
  // A permalink (#message-N) or the unread divider wins over "newest at the bottom".
  if (location.hash) return;
  const divider = document.getElementById("unread");
  if (divider) { divider.scrollIntoView({ block: "center" }); return; }
  const messages = document.getElementById("messages");
  if (messages && messages.lastElementChild) messages.lastElementChild.scrollIntoView({ block: "end" });
}

document.addEventListener("DOMContentLoaded", () => {
  const invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();
  scrollToLatest();
  // Opening the page does not mark it read (a GET never writes): this POST does.
  scheduleRead();
});

// Enter sends, Shift+Enter makes a new line (as in every chat app).
document.addEventListener("keydown", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLTextAreaElement) || !field.hasAttribute("data-enter-sends")) return;
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  const files = document.getElementById("compose-files");
  const hasFiles = files && files.files && files.files.length > 0;
  if ((field.value.trim() !== "" || hasFiles) && field.form) field.form.requestSubmit();
});

// Files: dropped on or pasted into the compose form, they join its file input, so the
// upload is the same form post as without JavaScript; htmx reports its progress.
function addFiles(files) {
  const input = document.getElementById("compose-files");
  if (!input || !files || files.length === 0) return false;
  const all = new DataTransfer();
  for (const file of input.files) all.items.add(file);
  for (const file of files) all.items.add(file);
  input.files = all.files;
  return true;
}
function inCompose(event) {
  return event.target instanceof Element && event.target.closest("#compose") !== null;
}
document.addEventListener("dragover", (event) => {
  if (inCompose(event) && event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) event.preventDefault();
});
document.addEventListener("drop", (event) => {
  if (!inCompose(event) || !event.dataTransfer || event.dataTransfer.files.length === 0) return;
  event.preventDefault();
  addFiles(event.dataTransfer.files);
});
document.addEventListener("paste", (event) => {
  if (!inCompose(event) || !event.clipboardData || event.clipboardData.files.length === 0) return;
  if (addFiles(event.clipboardData.files)) event.preventDefault();
});
document.addEventListener("htmx:xhr:progress", (event) => {
  const bar = document.getElementById("compose-progress");
  if (!bar || !event.detail || !event.detail.lengthComputable || !event.detail.total) return;
  bar.hidden = false;
  bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
});

// After a send swapped in a fresh compose form: focus it and show the new message.
document.addEventListener("htmx:afterSettle", (event) => {
  const target = event.detail && event.detail.target;
  if (target && target.id === "messages") {
    const body = document.getElementById("compose-body");
    if (body) body.focus();
    if (target.lastElementChild) target.lastElementChild.scrollIntoView({ block: "end" });
  }
});

// ---- Realtime -------------------------------------------------------------------
// The server sends HTML; these few rules place it. Every rule is idempotent (insert
// or replace by id), so an event delivered twice changes nothing.
//   <div data-into="SELECTOR" [data-at="top"]>…</div>  insert-or-replace each child by id,
//                                  in id order (or at the top) in the container
//   <div data-replace>…</div>      replace each child's namesake, if shown
//   <div data-each="SELECTOR">X</div>  replace every match with a copy of X
//   <div data-top="ID"></div>      move an element to the top of its list
//   <div data-remove="ID"></div>   remove an element
// Responses to our own forms use the same rules (hx-swap="live"): children with an id
// go into the target.

function idNumber(element) {
  const match = /(\d+)$/.exec(element.id || "");
  return match ? Number(match[1]) : NaN;
}

function upsert(container, element, top, added) {
  const existing = element.id && document.getElementById(element.id);
  const dayOf = element.classList.contains("day-separator") && document.getElementById(`message-${idNumber(element)}`);
  if (existing && existing.isEqualNode(element)) {
    // The same bytes again (our own send's answer, then its live copy): keep the element,
    // so focus, a half-made click and references to it survive.
    added.push(existing);
    return;
  } else if (existing) {
    existing.replaceWith(element);
  } else if (dayOf) {
    // A day separator goes right before its message, if that is already shown.
    dayOf.before(element);
  } else if (top) {
    container.prepend(element);
  } else {
    // Keep ids ascending: a replayed older message goes before newer ones.
    const number = idNumber(element);
    let before = null;
    for (let child = container.lastElementChild; child; child = child.previousElementSibling) {
      const n = idNumber(child);
      if (!Number.isNaN(n) && child.classList.contains("message") && n > number) before = child;
      else if (!Number.isNaN(n) && child.classList.contains("message")) break;
    }
    container.insertBefore(element, before);
  }
  added.push(element);
}

function applyLive(target, fragment) {
  const added = [];
  for (const op of Array.from(fragment.children)) {
    const data = op.dataset;
    if (data.into !== undefined) {
      const container = document.querySelector(data.into);
      if (container) for (const child of Array.from(op.children)) upsert(container, child, data.at === "top", added);
    } else if (data.replace !== undefined) {
      for (const child of Array.from(op.children)) {
        const existing = child.id && document.getElementById(child.id);
        if (existing) { existing.replaceWith(child); added.push(child); }
      }
    } else if (data.each !== undefined) {
      const model = op.firstElementChild;
      if (model) for (const existing of document.querySelectorAll(data.each)) {
        const copy = model.cloneNode(true);
        existing.replaceWith(copy);
        added.push(copy);
      }
    } else if (data.top !== undefined) {
      const item = document.getElementById(data.top);
      if (item && item.parentElement && item.parentElement.firstElementChild !== item) item.parentElement.prepend(item);
    } else if (data.remove !== undefined) {
      const item = document.getElementById(data.remove);
      if (item) item.remove();
    } else if (op.id && target) {
      upsert(target, op, false, added);
    }
  }
  return added;
}

htmx.defineExtension("live", {
  handleSwap(style, target, fragment) {
    if (style !== "live") return false;
    const before = openMessages() && openMessages().lastElementChild;
    const added = applyLive(target === document.getElementById("live") ? null : target, fragment);
    afterLive(added, before);
    return added;
  },
});

function openMessages() {
  return document.querySelector("#messages[data-conversation-id]");
}

function nearBottom() {
  const slack = 150;
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - slack;
}

// New messages in the open conversation: follow them if the reader was at the
// bottom, and tell the server they were seen while the page is visible.
function afterLive(added, lastBefore) {
  const list = openMessages();
  if (!list) return;
  const arrived = added.filter((el) => el.parentElement === list && el.classList.contains("message"));
  if (arrived.length === 0) return;
  const empty = document.getElementById("no-messages");
  if (empty) empty.hidden = true;
  const last = list.lastElementChild;
  if (last && last !== lastBefore && nearBottom()) last.scrollIntoView({ block: "end" });
  scheduleRead();
}

let readTimer = null;
function scheduleRead() {
  if (readTimer) return;
  readTimer = setTimeout(() => {
    readTimer = null;
    if (document.visibilityState !== "visible") return;
    const list = openMessages();
    if (!list) return;
    let newest = 0;
    for (const el of list.querySelectorAll(":scope > .message")) newest = Math.max(newest, idNumber(el) || 0);
    if (newest <= Number(list.dataset.readUpTo || 0)) return;
    list.dataset.readUpTo = String(newest);
    const id = list.dataset.conversationId;
    fetch(`/c/${id}/read`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `up_to=${newest}`,
      credentials: "same-origin",
    }).then((response) => {
      // Refused (e.g. 429): try again with the next message or visit.
      if (!response.ok) list.dataset.readUpTo = "0";
    }).catch(() => { list.dataset.readUpTo = "0"; });
  }, 400);
}
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") scheduleRead(); });

// The cursor: htmx-ext-sse opens a fresh EventSource (without Last-Event-ID) after
// the stream fails, from the URL in sse-connect, so keep that URL at the newest id.
document.addEventListener("htmx:sseMessage", (event) => {
  const id = event.detail && event.detail.lastEventId;
  const live = document.getElementById("live");
  if (live && id && /^\d+$/.test(id)) live.setAttribute("sse-connect", `/events?since=${id}`);
});

// Too far behind (or signed out): reload and start from the page.
document.addEventListener("htmx:sseBeforeMessage", (event) => {
  if (event.detail && event.detail.type === "resync") {
    event.preventDefault();
    location.reload();
  }
});

// Typing: a ping when keys are pressed in the message box, at most every 3 s.
let lastPing = 0;
document.addEventListener("input", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLTextAreaElement) || field.id !== "compose-body") return;
  const list = openMessages();
  if (!list || field.value.trim() === "") return;
  const now = Date.now();
  if (now - lastPing < 3000) return;
  lastPing = now;
  fetch(`/c/${list.dataset.conversationId}/typing`, { method: "POST", credentials: "same-origin" }).catch(() => {});
});
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail && event.detail.elt && event.detail.elt.id === "compose") lastPing = 0;
});

// Time zone: while the person has chosen none, offer the browser's once (the server
// keeps it only if still none is chosen); later pages show times in it.
document.addEventListener("DOMContentLoaded", () => {
  if (!document.body.hasAttribute("data-offer-zone")) return;
  let zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (_) { return; }
  if (!zone) return;
  document.body.removeAttribute("data-offer-zone");
  fetch("/settings/time-zone/detected", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: `time_zone=${encodeURIComponent(zone)}`,
    credentials: "same-origin",
  }).catch(() => {});
});

// The installable app: a service worker keeps the shell and shows the offline page when
// the server cannot be reached. Without JavaScript nothing changes.
if ("serviceWorker" in navigator) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  });
}

// On the offline page: reload (the address that was asked for) once the server answers.
document.addEventListener("DOMContentLoaded", () => {
  if (!document.getElementById("offline")) return;
  const retry = () => {
    fetch("/healthz", { cache: "no-store" })
      .then((response) => { if (response.ok) location.reload(); else setTimeout(retry, 3000); })
      .catch(() => setTimeout(retry, 3000));
  };
  setTimeout(retry, 3000);
});

// Web Push, Settings → Notifications: the switch subscribes this browser through the
// service worker with the server's VAPID key and posts the PushSubscription; turning
// it off unsubscribes and tells the server. Without JavaScript the page says so.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("push-settings");
  const toggle = document.getElementById("push-switch");
  if (!box || !toggle) return;
  const status = document.getElementById("push-status");
  const say = (text) => { if (status) status.textContent = text; };
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    say("This browser cannot receive push notifications.");
    return;
  }
  toggle.closest(".push-switch").hidden = false;
  const key = Uint8Array.from(atob(box.dataset.vapidKey.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const send = (method, body) => fetch("/push/subscriptions", {
    method, credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  navigator.serviceWorker.ready.then((registration) => registration.pushManager.getSubscription()).then((current) => {
    toggle.checked = !!current;
    // Known to the browser but not to the server (removed elsewhere): register it again.
    if (current && !box.querySelector(`[data-endpoint="${CSS.escape(current.endpoint)}"]`)) send("POST", current.toJSON());
  });
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const registration = await navigator.serviceWorker.ready;
      if (toggle.checked) {
        if ((await Notification.requestPermission()) !== "granted") throw new Error("Notifications are blocked for this site in the browser's settings.");
        const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
        const response = await send("POST", subscription.toJSON());
        if (!response.ok) throw new Error(await response.text());
        say("Push notifications are on for this device.");
      } else {
        const subscription = await registration.pushManager.getSubscription();
        if (subscription) {
          await send("DELETE", { endpoint: subscription.endpoint });
          await subscription.unsubscribe();
        }
        say("Push notifications are off for this device.");
      }
    } catch (error) {
      toggle.checked = !toggle.checked;
      say(`Could not change push notifications: ${error.message || error}`);
    } finally {
      toggle.disabled = false;
    }
  });
});

// No push for a conversation its reader is looking at: while this tab shows one and is
// visible, tell the server every 25 s; say so at once when hidden or left. The server
// answers "off" when the person has no push subscription, and the beat stops.
(() => {
  let beat = null;
  let off = false;
  const report = (visible) => {
    const list = openMessages();
    if (!list || off) return;
    const body = new URLSearchParams({ conversation_id: list.dataset.conversationId, visible: visible ? "1" : "0" });
    if (!visible && navigator.sendBeacon) {
      navigator.sendBeacon("/push/focus", body);
      return;
    }
    fetch("/push/focus", { method: "POST", credentials: "same-origin", body }).then((response) => {
      if (response.status === 200) response.text().then((text) => { if (text === "off") { off = true; clearInterval(beat); } });
    }).catch(() => {});
  };
  const update = () => {
    clearInterval(beat);
    const visible = document.visibilityState === "visible";
    report(visible);
    if (visible) beat = setInterval(() => report(true), 25000);
  };
  document.addEventListener("DOMContentLoaded", update);
  document.addEventListener("visibilitychange", update);
  window.addEventListener("pagehide", () => report(false));
})();
