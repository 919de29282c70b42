// The gateway's dashboard: reads GET /stats and GET /services from the
// admin API with the admin token, every few seconds, and draws them.
//
// The token comes from the address' fragment (/dashboard#token=…): a
// fragment never leaves the browser, so it reaches neither the gateway's
// logs nor a proxy's. Without one, the page asks for it. Everything is
// built with DOM calls and textContent — names from the config are never
// read as HTML — and the chart is SVG drawn here: no library, nothing
// fetched from elsewhere (the admin API's Content-Security-Policy forbids
// it anyway).
"use strict";

const REFRESH_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";

function tokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function element(name, text, className) {
  const made = document.createElement(name);
  if (text !== undefined) made.textContent = text;
  if (className) made.className = className;
  return made;
}

// Bytes for people: 1536 is "1.5 KiB".
function bytes(count) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let unit = 0;
  while (count >= 1024 && unit < units.length - 1) {
    count /= 1024;
    unit += 1;
  }
  const figure = unit === 0 ? String(count) : count.toFixed(1).replace(/\.0$/, "");
  return figure + " " + units[unit];
}

function svgElement(name, attributes) {
  const made = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, value);
  return made;
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function askForToken(why) {
  document.getElementById("board").hidden = true;
  document.getElementById("login").hidden = false;
  setStatus(why);
}

async function read(path, token) {
  const answer = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (answer.status === 401) throw new Error("unauthorized");
  if (!answer.ok) throw new Error(path + ": " + answer.status + " " + (await answer.text()));
  return answer.json();
}

// Today's and yesterday's hours as two lines over 24 hours.
function drawChart(total) {
  const chart = document.getElementById("chart");
  chart.replaceChildren();
  const [left, right, top, bottom] = [40, 710, 10, 190];
  const highest = Math.max(1, ...total.hours_today, ...total.hours_yesterday);
  const x = (hour) => left + ((right - left) * hour) / 23;
  const y = (count) => bottom - ((bottom - top) * count) / highest;
  chart.append(svgElement("line", { x1: left, y1: bottom, x2: right, y2: bottom, class: "axis" }));
  chart.append(svgElement("line", { x1: left, y1: top, x2: left, y2: bottom, class: "axis" }));
  for (const hour of [0, 6, 12, 18, 23]) {
    const label = svgElement("text", { x: x(hour), y: bottom + 16, "text-anchor": "middle" });
    label.textContent = hour + "h";
    chart.append(label);
  }
  const most = svgElement("text", { x: left - 6, y: top + 4, "text-anchor": "end" });
  most.textContent = String(highest);
  chart.append(most);
  for (const [series, hours] of [["yesterday", total.hours_yesterday], ["today", total.hours_today]]) {
    const points = hours.map((count, hour) => x(hour) + "," + y(count)).join(" ");
    chart.append(svgElement("polyline", { points, class: series, "data-series": series }));
  }
}

function drawServices(stats, services) {
  const rows = services.services.map((service) => {
    const row = element("tr");
    row.dataset.service = service.name;
    row.append(element("td", service.name));
    const upstreams = element("td");
    for (const upstream of service.upstreams) {
      const state = upstream.drained ? "drained" : upstream.healthy ? "healthy" : "unhealthy";
      const line = element("div", (upstream.healthy ? "● " : "○ ") + upstream.url + " ", state);
      line.append(element("span", state));
      // Where it came from: the file, or a ZooKeeper path it registered in.
      line.append(element("span", " " + upstream.source, "source"));
      upstreams.append(line);
    }
    if (service.cache) {
      const held = bytes(service.cache.stored_bytes) + " of " + bytes(service.cache.size);
      upstreams.append(element("div", "cache " + held, "cache"));
    }
    row.append(upstreams);
    const counts = stats.services[service.name];
    row.append(element("td", counts ? String(counts.today) : "–"));
    return row;
  });
  document.getElementById("services").replaceChildren(...rows);
}

function drawApps(stats) {
  const rows = Object.entries(stats.apps)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, counts]) => {
      const row = element("tr");
      row.dataset.app = id;
      row.append(element("td", id));
      row.append(element("td", String(counts.today)));
      row.append(element("td", String(counts.yesterday)));
      row.append(element("td", counts.qps.toFixed(1)));
      return row;
    });
  document.getElementById("apps").replaceChildren(...rows);
}

async function refresh() {
  const token = tokenFromAddress();
  if (!token) {
    askForToken("the admin token, please");
    return;
  }
  try {
    const [stats, services] = await Promise.all([read("/stats", token), read("/services", token)]);
    document.getElementById("login").hidden = true;
    document.getElementById("board").hidden = false;
    document.getElementById("service-count").textContent = String(services.services.length);
    document.getElementById("app-count").textContent = String(Object.keys(stats.apps).length);
    document.getElementById("today").textContent = String(stats.total.today);
    document.getElementById("qps").textContent = stats.total.qps.toFixed(1);
    drawChart(stats.total);
    drawServices(stats, services);
    drawApps(stats);
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (error) {
    if (error.message === "unauthorized") askForToken("that token is not the admin token");
    else setStatus("cannot read the admin API: " + error.message);
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = "token=" + encodeURIComponent(document.getElementById("token").value);
  refresh();
});
window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
