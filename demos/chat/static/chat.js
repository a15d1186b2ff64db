// Squall chat client: a WebSocket when the browser can hold one, long polling
// otherwise (or when the page is opened with ?transport=poll).
"use strict";

(function () {
  const inbox = document.getElementById("inbox");
  const form = document.getElementById("message-form");
  const input = document.getElementById("body");
  const statusLine = document.getElementById("status");
  const xsrf = form.querySelector("input[name=_xsrf]").value;

  // Everything up to this sequence number is on the page already.
  let cursor = Number(inbox.dataset.cursor || 0);
  let socket = null;

  const chat = { transport: "connecting", cursor: () => cursor };
  let markReady;
  chat.ready = new Promise((resolve) => { markReady = resolve; });
  window.chat = chat;

  function setTransport(name, text) {
    chat.transport = name;
    statusLine.textContent = text;
    statusLine.dataset.transport = name;
    if (name === "websocket" || name === "poll") markReady(name);
  }

  // The server renders (and escapes) each message; we only insert new ones.
  function show(messages) {
    for (const message of messages) {
      if (message.seq <= cursor) continue;
      cursor = message.seq;
      const holder = document.createElement("div");
      holder.innerHTML = message.html;
      const node = holder.firstElementChild;
      if (node) {
        node.classList.add("new");
        inbox.appendChild(node);
      }
    }
    inbox.scrollTop = inbox.scrollHeight;
  }

  function post(url, fields) {
    const body = new URLSearchParams(fields);
    body.set("_xsrf", xsrf);
    return fetch(url, { method: "POST", body, credentials: "same-origin" }).then((response) => {
      if (!response.ok) throw new Error(url + ": HTTP " + response.status);
      return response.json();
    });
  }

  // Long polling: each answer carries the messages after our cursor.
  let pollFailures = 0;
  function poll() {
    post("/a/message/updates", { cursor: String(cursor) }).then((data) => {
      pollFailures = 0;
      show(data.messages);
      poll();
    }, (error) => {
      pollFailures += 1;
      const delay = Math.min(30000, 500 * 2 ** pollFailures);
      statusLine.textContent = "Connection lost (" + error.message + "); retrying…";
      window.setTimeout(poll, delay);
    });
  }

  function startPolling() {
    if (chat.transport === "poll") return;
    setTransport("poll", "Connected by long polling");
    poll();
  }

  function startSocket() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let opened = false;
    try {
      socket = new WebSocket(scheme + location.host + "/chatsocket?cursor=" + cursor);
    } catch (error) {
      startPolling();
      return;
    }
    socket.onopen = () => {
      opened = true;
      setTransport("websocket", "Connected by WebSocket");
    };
    socket.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (data.messages) show(data.messages);
      if (data.error) statusLine.textContent = data.error;
    };
    // A socket that never opened (blocked by a proxy, say) or that dropped:
    // carry on by long polling, which resumes from the same cursor.
    socket.onclose = () => {
      socket = null;
      if (!opened) statusLine.textContent = "WebSocket unavailable";
      startPolling();
    };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ body: text }));
    } else {
      post("/a/message/new", { body: text }).then((data) => show(data.messages), (error) => {
        statusLine.textContent = "Not sent: " + error.message;
      });
    }
    input.value = "";
    input.focus();
  });

  const forced = new URLSearchParams(location.search).get("transport");
  if (forced === "poll" || !("WebSocket" in window)) {
    startPolling();
  } else {
    startSocket();
  }
})();
