// Voice: WebRTC needs a script, so this is the one part of Reale that does not work
// without JavaScript (the page says so). The microphone goes to the server's SFU in
// the first offer, with two video senders (camera, screen) that send nothing until
// turned on, and a data channel; from then on the SFU offers over that channel
// whenever someone joins or leaves, and this side answers. Turning the camera or the
// screen on swaps a sender's track, which needs no new offer.
(() => {
  "use strict";
  const controls = document.getElementById("voice-controls");
  if (!controls || !window.RTCPeerConnection || !navigator.mediaDevices) return;
  const $ = (id) => document.getElementById(id);
  // The endpoints come from the page, so a server's voice channel and a call in a DM
  // or group share this script.
  const { rtc, leave, mute, deafen, camera, screen } = controls.dataset;
  const status = $("voice-status");
  const media = $("voice-media");
  const tiles = $("voice-tiles");
  const [joinButton, muteButton, deafenButton, cameraButton, screenButton, leaveButton] =
    ["voice-join", "voice-mute", "voice-deafen", "voice-camera", "voice-screen", "voice-leave"].map($);
  let pc = null;
  let mic = null;
  let muted = false;
  let deafened = false;
  // Our video senders and what they send now (null: nothing).
  const video = { camera: { sender: null, track: null, preview: null }, screen: { sender: null, track: null, preview: null } };
  // What the others send us, by the stream id the SFU gives it ("camera-12").
  const remote = new Map();
  // Bandwidth kept sane: a cap per track (the SFU forwards, it does not re-encode).
  const CAPS = { camera: { maxBitrate: 600_000, maxFramerate: 24 }, screen: { maxBitrate: 1_500_000, maxFramerate: 15 } };
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
    for (const button of [muteButton, deafenButton, cameraButton, screenButton, leaveButton]) {
      if (button) button.hidden = !inCall;
    }
  };

  const press = (button, on, label) => {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? `Un${label.toLowerCase()}` : label;
  };

  const hangUp = (why) => {
    if (pc) pc.close();
    if (mic) mic.getTracks().forEach((track) => track.stop());
    for (const kind of ["camera", "screen"]) {
      if (video[kind].track) video[kind].track.stop();
      video[kind] = { sender: null, track: null, preview: null };
    }
    pc = null;
    mic = null;
    remote.clear();
    media.replaceChildren();
    if (tiles) {
      tiles.replaceChildren();
      tiles.hidden = true;
    }
    for (const button of [cameraButton, screenButton]) if (button) button.setAttribute("aria-pressed", "false");
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
    // TURN servers, when the server has them, for networks that block our media port.
    pc = new RTCPeerConnection({ iceServers: JSON.parse(controls.dataset.ice || "[]") });
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
    video.camera.sender = pc.addTransceiver("video", { direction: "sendonly" }).sender;
    video.screen.sender = pc.addTransceiver("video", { direction: "sendonly" }).sender;
    pc.ontrack = (event) => {
      if (event.track.kind === "video") {
        const id = event.streams[0] ? event.streams[0].id : "";
        remote.set(id, new MediaStream([event.track]));
        event.track.addEventListener("ended", () => { remote.delete(id); drawTiles(); });
        drawTiles();
        return;
      }
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
    drawTiles();
    press(muteButton, muted, "Mute");
    press(deafenButton, deafened, "Deafen");
    if (joined.muted_by_server) status.textContent = "You can listen here but not speak.";
  };

  // The tiles follow the roster (who is here, muted, camera or screen on), which the
  // server keeps current on this page: one tile per person, one more per shared screen.
  const roster = () => document.querySelectorAll(".voice-room .voice-roster > li[data-user-id]");
  const tile = (key, label, stream, isMe) => {
    let figure = tiles.querySelector(`figure[data-key="${key}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.dataset.key = key;
      figure.className = "voice-tile";
      figure.append(document.createElement("figcaption"));
    }
    figure.querySelector("figcaption").textContent = label;
    let player = figure.querySelector("video");
    if (stream && !player) {
      player = document.createElement("video");
      player.autoplay = true;
      player.playsInline = true;
      player.muted = true; // sound comes through the audio elements
      figure.prepend(player);
    }
    if (player) player.setAttribute("aria-label", label);
    if (player && !stream) player.remove();
    if (player && player.srcObject !== stream) player.srcObject = stream;
    if (player && isMe) player.classList.add("mirrored");
    return figure;
  };
  const drawTiles = () => {
    if (!tiles || !pc) return;
    const me = document.body.dataset.viewerId;
    const shown = [];
    for (const li of roster()) {
      const user = li.dataset.userId;
      const isMe = user === me;
      const name = isMe ? "You" : li.dataset.name;
      const mutedNote = li.hasAttribute("data-muted") ? " (muted)" : "";
      const cam = isMe ? video.camera.preview : remote.get(`camera-${user}`);
      shown.push(tile(`person-${user}`, `${name}${mutedNote}`, li.hasAttribute("data-camera") || (isMe && video.camera.track) ? cam || null : null, isMe));
      if (li.hasAttribute("data-screen") && !isMe) {
        shown.push(tile(`screen-${user}`, `${name}’s screen`, remote.get(`screen-${user}`) || null, false));
      }
    }
    tiles.replaceChildren(...shown);
    tiles.hidden = shown.length === 0;
  };
  // Redrawn when the roster changes (not when the tiles themselves do).
  new MutationObserver((records) => {
    if (records.some((r) => !tiles.contains(r.target) && !media.contains(r.target))) drawTiles();
  }).observe(controls.closest("section") || document.body, { childList: true, subtree: true });

  // Camera or screen on: the sender takes the track (capped), and the others' pages are
  // told; off: the sender sends nothing again.
  const share = async (kind, button) => {
    if (!pc || !video[kind].sender) return;
    const on = !video[kind].track;
    if (on) {
      let stream;
      try {
        stream = kind === "camera"
          ? await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } })
          : await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 } });
      } catch (error) {
        status.textContent = kind === "camera"
          ? `Your camera could not be opened (${error.name}).`
          : `Your screen could not be shared (${error.name}).`;
        return;
      }
      const [track] = stream.getVideoTracks();
      if (!pc) { track.stop(); return; }
      video[kind].track = track;
      video[kind].preview = new MediaStream([track]);
      await video[kind].sender.replaceTrack(track);
      const params = video[kind].sender.getParameters();
      if (params.encodings && params.encodings.length) {
        Object.assign(params.encodings[0], CAPS[kind]);
        await video[kind].sender.setParameters(params).catch(() => {});
      }
      // Stopped from the browser's own "Stop sharing" bar.
      track.addEventListener("ended", () => { if (video[kind].track === track) share(kind, button); });
    } else {
      video[kind].track.stop();
      video[kind].track = null;
      video[kind].preview = null;
      await video[kind].sender.replaceTrack(null);
    }
    button.setAttribute("aria-pressed", on ? "true" : "false");
    post(kind === "camera" ? camera : screen, { on });
    drawTiles();
  };

  joinButton.addEventListener("click", join);
  if (cameraButton) cameraButton.addEventListener("click", () => share("camera", cameraButton));
  if (screenButton) {
    if (!navigator.mediaDevices.getDisplayMedia) screenButton.remove();
    else screenButton.addEventListener("click", () => share("screen", screenButton));
  }
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
