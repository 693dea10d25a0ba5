// Voice: WebRTC needs a script, so this is the one part of Reale that does not work
// without JavaScript (the page says so). The microphone goes to the server's SFU in
// the first offer, with a data channel; from then on the SFU offers over that channel
// whenever someone joins or leaves, and this side answers.
(() => {
  "use strict";
  const controls = document.getElementById("voice-controls");
  if (!controls || !window.RTCPeerConnection || !navigator.mediaDevices) return;
  const $ = (id) => document.getElementById(id);
  // The endpoints come from the page, so a server's voice channel and a call in a DM
  // or group share this script.
  const { rtc, leave, mute, deafen } = controls.dataset;
  const status = $("voice-status");
  const media = $("voice-media");
  const [joinButton, muteButton, deafenButton, leaveButton] = ["voice-join", "voice-mute", "voice-deafen", "voice-leave"].map($);
  let pc = null;
  let mic = null;
  let muted = false;
  let deafened = false;
  controls.hidden = false;

  const post = (path, fields) =>
    fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields || {}),
      redirect: "manual",
      credentials: "same-origin",
      keepalive: true,
    });

  const show = (inCall) => {
    joinButton.hidden = inCall;
    joinButton.disabled = false;
    for (const button of [muteButton, deafenButton, leaveButton]) button.hidden = !inCall;
  };

  const press = (button, on, label) => {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? `Un${label.toLowerCase()}` : label;
  };

  const hangUp = (why) => {
    if (pc) pc.close();
    if (mic) mic.getTracks().forEach((track) => track.stop());
    pc = null;
    mic = null;
    media.replaceChildren();
    show(false);
    status.textContent = why;
  };

  const join = async () => {
    joinButton.disabled = true;
    status.textContent = "Connecting…";
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      joinButton.disabled = false;
      status.textContent = `Your microphone could not be opened (${error.name}).`;
      return;
    }
    pc = new RTCPeerConnection();
    const channel = pc.createDataChannel("signal");
    channel.onmessage = async (event) => {
      const offer = JSON.parse(event.data);
      if (offer.type !== "offer" || !pc) return;
      await pc.setRemoteDescription(offer);
      await pc.setLocalDescription(await pc.createAnswer());
      channel.send(JSON.stringify(pc.localDescription));
    };
    const track = mic.getAudioTracks()[0];
    track.enabled = !muted;
    pc.addTransceiver(track, { direction: "sendonly", streams: [mic] });
    pc.ontrack = (event) => {
      const audio = document.createElement("audio");
      audio.autoplay = true;
      audio.muted = deafened;
      audio.srcObject = new MediaStream([event.track]);
      media.append(audio);
      event.track.addEventListener("ended", () => audio.remove());
    };
    pc.onconnectionstatechange = () => {
      if (!pc) return;
      if (pc.connectionState === "connected") status.textContent = `Connected to voice.`;
      if (pc.connectionState === "failed") hangUp("The voice connection was lost (or you joined somewhere else).");
    };
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(rtc, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
      credentials: "same-origin",
    });
    if (!response.ok) {
      hangUp(await response.text());
      return;
    }
    const joined = await response.json();
    await pc.setRemoteDescription(joined.answer);
    show(true);
    press(muteButton, muted, "Mute");
    press(deafenButton, deafened, "Deafen");
    if (joined.muted_by_server) status.textContent = "You can listen here but not speak.";
  };

  joinButton.addEventListener("click", join);
  leaveButton.addEventListener("click", () => {
    post(leave);
    hangUp("You left voice.");
  });
  muteButton.addEventListener("click", () => {
    muted = !muted;
    if (mic) mic.getAudioTracks().forEach((track) => { track.enabled = !muted; });
    press(muteButton, muted, "Mute");
    post(mute, { on: muted });
  });
  deafenButton.addEventListener("click", () => {
    deafened = !deafened;
    media.querySelectorAll("audio").forEach((audio) => { audio.muted = deafened; });
    if (deafened && !muted) {
      muted = true;
      if (mic) mic.getAudioTracks().forEach((track) => { track.enabled = false; });
      press(muteButton, true, "Mute");
    }
    press(deafenButton, deafened, "Deafen");
    post(deafen, { on: deafened });
  });
  // Leaving the page leaves the room at once, not when the connection times out.
  window.addEventListener("pagehide", () => { if (pc) post(leave); });
})();
