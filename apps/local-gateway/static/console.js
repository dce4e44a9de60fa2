// The protocol console (/inspector/console): a file, not an inline script, so the page's
// Content-Security-Policy runs no inline script at all.
import { ACTIONS } from "./protocol.js";

const $ = (id) => document.getElementById(id);
// The server writes its --stage into the page, so the page follows it.
const stage = document.querySelector('meta[name="gateway-stage"]').content;
$("url").value = `ws://${location.host}/${encodeURIComponent(stage)}`;
let socket = null, next = 1;
const log = (cls, text) => {
  const line = document.createElement("div");
  line.className = cls; line.textContent = text;
  $("log").appendChild(line); $("log").scrollTop = $("log").scrollHeight;
};
const buttons = ["close", "whoami", "join", "leave", "publish", "broadcast"];
const setOpen = (open) => {
  buttons.forEach((b) => ($(b).disabled = !open));
  $("connect").disabled = open;
  $("state").textContent = open ? "open" : "closed";
};
const send = (message) => {
  message.requestId = String(next++);
  const text = JSON.stringify(message);
  socket.send(text); log("out", "→ " + text);
};
$("connect").onclick = () => {
  socket = new WebSocket($("url").value);
  socket.onopen = () => { setOpen(true); log("sys", "connected"); };
  socket.onmessage = (e) => log("in", "← " + e.data);
  socket.onclose = (e) => { setOpen(false); log("sys", `closed: ${e.code} ${e.reason}`); };
};
$("close").onclick = () => socket.close(1000, "bye");
$("whoami").onclick = () => send({ action: ACTIONS.WHOAMI });
$("join").onclick = () => send({ action: ACTIONS.JOIN, room: $("room").value });
$("leave").onclick = () => send({ action: ACTIONS.LEAVE, room: $("room").value });
$("publish").onclick = () => send({ action: ACTIONS.PUBLISH, room: $("room").value, data: $("roomText").value });
$("broadcast").onclick = () => send({ action: ACTIONS.SENDMESSAGE, data: $("allText").value });
