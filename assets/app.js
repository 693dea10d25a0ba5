// Reale's hand-written script: only what HTML and htmx cannot do. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Move focus to the first invalid field after a server-side validation error.
  const invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();
});
