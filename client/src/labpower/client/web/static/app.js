// labpower-web's page: the lab's targets, last switches, a live log and readings plots.
//
// Everything shown comes from clients of the daemons (lease holder names, log messages), so
// it is written with textContent and setAttribute only, never parsed as markup: a holder
// named "<script>...</script>" shows as that text. No libraries, no build step.
"use strict";

const LOG_ROWS = 500;
const SVG = "http://www.w3.org/2000/svg";
let readInterval = 5;
let windowSeconds = 900;
let readingsTimer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    node.setAttribute(name, String(value));
  }
  return node;
}

function time(text) {
  if (!text) return "";
  const when = new Date(text);
  return isNaN(when) ? String(text) : when.toLocaleString();
}

function span(seconds) {
  return seconds < 120 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

function yesNo(value) {
  return el("span", { class: value ? "yes" : "no" }, value ? "yes" : "no");
}

function who(entry) {
  if (entry.client_uid === undefined || entry.client_uid === null) return "labpowerd";
  return `uid ${entry.client_uid} (pid ${entry.client_pid})`;
}

// -- targets
function renderState(state) {
  const body = document.querySelector("#targets tbody");
  const rows = [];
  const down = [];
  for (const host of state.hosts) {
    if (host.error) down.push(`${host.name}: ${host.error}`);
    for (const t of host.targets) {
      const lease = t.lease;
      const holder = lease
        ? `${lease.name ? lease.name + " " : ""}(uid ${lease.uid}, pid ${lease.pid})`
        : "";
      const available = el("td", { class: "available" }, yesNo(t.available));
      if (!t.available && t.problem) {
        available.append(" ", el("span", { class: "problem" }, t.problem));
      }
      rows.push(el("tr",
        {
          "data-target": `${host.name}/${t.name}`,
          "data-state": t.state,
          "data-available": t.available,
          class: t.available ? "available" : "unavailable",
        },
        el("td", {}, host.name),
        el("td", { class: "name" }, t.name),
        el("td", {}, `${t.device} #${t.channel}`),
        el("td", { class: "state" }, el("span", { class: `badge ${t.state}` }, t.state)),
        el("td", { class: "verified" }, yesNo(t.verified)),
        available,
        el("td", { class: "lease" }, holder),
        el("td", { class: "lease-since" }, lease ? time(lease.since) : ""),
        el("td", { class: "since" }, time(t.since)),
      ));
    }
  }
  body.replaceChildren(...rows);
  const banner = document.getElementById("hosts-down");
  banner.hidden = down.length === 0;
  banner.textContent = down.length ? "Not reachable: " + down.join("; ") : "";
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// -- switches and the log
function switchRow(e) {
  return el("tr", { "data-seq": e.seq, "data-host": e.host },
    el("td", {}, time(e.time)),
    el("td", {}, e.host),
    el("td", {}, e.target || ""),
    el("td", {}, e.op || ""),
    el("td", { class: e.level === "error" ? "problem" : "" },
      `${e.before || "?"} → ${e.state || "?"}`),
    el("td", {}, who(e)),
  );
}

function logRow(e) {
  const where = [e.host, e.target || e.device].filter(Boolean).join("/");
  return el("li", { class: `level-${e.level}`, "data-seq": e.seq, "data-host": e.host },
    `${time(e.time)} ${e.level.toUpperCase()} ${where}: ${e.message}`);
}

function isSwitch(e) {
  return ["on", "off", "cycle", "start"].includes(e.op) && e.state && e.target;
}

function addEntry(e) {
  const log = document.getElementById("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(logRow(e));
  while (log.children.length > LOG_ROWS) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
  if (isSwitch(e)) {
    const body = document.querySelector("#switches tbody");
    body.prepend(switchRow(e));
    while (body.children.length > 50) body.lastElementChild.remove();
  }
}

function renderSnapshot(snap) {
  readInterval = snap.read_interval;
  windowSeconds = snap.window;
  document.getElementById("window").textContent =
    `(apparent power in blue, current in orange; the last ${span(windowSeconds)})`;
  renderState(snap);
  const log = document.getElementById("log");
  log.replaceChildren(...snap.log.map(logRow));
  log.scrollTop = log.scrollHeight;
  document.querySelector("#switches tbody")
    .replaceChildren(...snap.switches.slice().reverse().map(switchRow));
  scheduleReadings(0);
}

// -- readings plots
function plot(key, samples, now) {
  const width = 280, height = 90, left = 34, bottom = 14;
  const box = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  box.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width,
    y2: height - bottom }));
  box.append(svg("line", { class: "axis", x1: left, y1: 0, x2: left, y2: height - bottom }));
  const top = Math.max(1, ...samples.map((s) => s[3]), ...samples.map((s) => s[2]));
  const x = (t) => left + (width - left) * (1 - (now - t) / windowSeconds);
  const y = (v) => (height - bottom) * (1 - v / top);
  for (const [index, cls] of [[3, "power"], [2, "current"]]) {
    const points = samples.map((s) => `${x(s[0]).toFixed(1)},${y(s[index]).toFixed(1)}`);
    if (points.length) box.append(svg("polyline", { class: cls, points: points.join(" ") }));
  }
  const label = (text, attrs) => {
    const node = svg("text", attrs);
    node.textContent = text;
    box.append(node);
  };
  label(top.toPrecision(3), { x: 2, y: 10 });
  label("0", { x: 2, y: height - bottom });
  label(`-${span(windowSeconds)}`, { x: left + 2, y: height - 2 });
  label("now", { x: width - 22, y: height - 2 });
  const last = samples[samples.length - 1];
  const summary = last
    ? `${last[3].toFixed(2)} VA, ${last[1].toFixed(2)} V, ${last[2].toFixed(3)} A`
    : "no reading";
  return el("div", { class: "plot", "data-target": key },
    el("h3", {}, key), box, el("div", { class: "muted reading" }, summary));
}

async function refreshReadings() {
  try {
    const answer = await fetch("api/readings", { cache: "no-store" });
    const data = await answer.json();
    const plots = [];
    for (const [host, targets] of Object.entries(data.hosts)) {
      for (const [target, samples] of Object.entries(targets)) {
        plots.push(plot(`${host}/${target}`, samples, data.now));
      }
    }
    document.getElementById("plots").replaceChildren(...plots);
  } catch (error) {
    // the event stream shows the service as down; the plots wait for the next round
  }
  scheduleReadings(readInterval * 1000);
}

function scheduleReadings(delay) {
  clearTimeout(readingsTimer);
  readingsTimer = setTimeout(refreshReadings, delay);
}

// -- the live connection
function connect() {
  const status = document.getElementById("status");
  const events = new EventSource("api/events");
  events.addEventListener("open", () => {
    status.dataset.status = "live";
    status.textContent = "live";
  });
  events.addEventListener("error", () => {
    status.dataset.status = "down";
    status.textContent = "reconnecting…";
  });
  events.addEventListener("snapshot", (m) => renderSnapshot(JSON.parse(m.data)));
  events.addEventListener("state", (m) => renderState(JSON.parse(m.data)));
  events.addEventListener("entry", (m) => addEntry(JSON.parse(m.data)));
}

connect();
