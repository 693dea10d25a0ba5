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
});

// Enter sends, Shift+Enter makes a new line (as in every chat app).
document.addEventListener("keydown", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLTextAreaElement) || !field.hasAttribute("data-enter-sends")) return;
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  if (field.value.trim() !== "" && field.form) field.form.requestSubmit();
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
