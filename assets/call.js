// Calls: what a call page adds to voice.js (which does the talking). A page opened to
// join (a call just started, or accepted from the banner) joins at once; when the
// server says the call ended (the live frame marks .call-state with data-ended), the
// page hangs up. Loaded after voice.js, so its buttons already work.
(() => {
  "use strict";
  const controls = document.getElementById("voice-controls");
  if (!controls || controls.hidden) return;
  const $ = (id) => document.getElementById(id);
  if (controls.dataset.autojoin !== undefined) {
    // A reload should not join again by itself.
    history.replaceState(null, "", location.pathname);
    $("voice-join").click();
  }
  const endIfEnded = () => {
    const state = document.querySelector(".call-state");
    if (!state || state.dataset.ended === undefined || controls.hidden) return;
    if (!$("voice-leave").hidden) $("voice-leave").click();
    controls.hidden = true;
    $("voice-status").textContent = state.textContent;
  };
  new MutationObserver(endIfEnded).observe(document.getElementById("main") || document.body, { subtree: true, childList: true });
  endIfEnded();
})();
