// Calls: what a call page adds to voice.js (which does the talking). A page opened to
// join (a call just started, or accepted from the banner) joins at once, a video call
// with the camera on; when the server says the call ended (the live frame marks
// .call-state with data-ended), the page hangs up. Loaded after voice.js, so its
// buttons already work.
(() => {
  "use strict";
  const controls = document.getElementById("voice-controls");
  if (!controls || controls.hidden) return;
  const $ = (id) => document.getElementById(id);
  if (controls.dataset.autojoin !== undefined) {
    // A video call starts with the camera on, once the call is joined.
    const camera = $("voice-camera");
    if (camera && document.querySelector(".call[data-video]")) {
      const joined = new MutationObserver(() => {
        if (camera.hidden) return;
        joined.disconnect();
        if (camera.getAttribute("aria-pressed") !== "true") camera.click();
      });
      joined.observe(camera, { attributes: true, attributeFilter: ["hidden"] });
    }
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
