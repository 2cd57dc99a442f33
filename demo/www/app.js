// The demo dashboard: one EventSource per channel, named events
// (X-EventSource-Event), browser reconnects resume with Last-Event-ID.

const COLORS = ["#4dabf7", "#ff922b", "#51cf66", "#cc5de8"];
const HISTORY = 120;
const series = new Map();  // iface -> [{t, in_bps}]
const sessions = new Map();
const jobs = new Map();

function subscribe(channel, handlers) {
  const es = new EventSource(`/sub/${channel}`);
  const dot = document.createElement("span");
  dot.innerHTML = `<span class="dot"></span>${channel} `;
  document.getElementById("links").appendChild(dot);
  es.onopen = () => dot.firstChild.classList.add("on");
  es.onerror = () => dot.firstChild.classList.remove("on");
  for (const [event, fn] of Object.entries(handlers)) {
    es.addEventListener(event, (e) => {
      dot.firstChild.classList.add("on");
      fn(JSON.parse(e.data), e.lastEventId);
    });
  }
  return es;
}

function human(bits) {
  const u = ["bps", "kbps", "Mbps", "Gbps", "Tbps"];
  let i = 0;
  while (bits >= 1000 && i < u.length - 1) { bits /= 1000; i++; }
  return `${bits.toFixed(1)} ${u[i]}`;
}

function bytes(n) {
  const u = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(1)} ${u[i]}`;
}

function drawBandwidth() {
  const c = document.getElementById("bw");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  let max = 1;
  for (const pts of series.values()) for (const p of pts) max = Math.max(max, p.v);
  g.strokeStyle = "#222a33";
  for (let y = 0; y <= 4; y++) {
    g.beginPath(); g.moveTo(0, y * c.height / 4); g.lineTo(c.width, y * c.height / 4); g.stroke();
  }
  let k = 0;
  const legend = [];
  for (const [iface, pts] of series) {
    const color = COLORS[k++ % COLORS.length];
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    pts.forEach((p, i) => {
      const x = (HISTORY - pts.length + i) * c.width / (HISTORY - 1);
      const y = c.height - 4 - (p.v / max) * (c.height - 8);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
    const last = pts[pts.length - 1];
    legend.push(`<span style="color:${color}">${iface} in ${human(last.v)}</span>`);
  }
  document.getElementById("bw-legend").innerHTML = legend.join("");
}

function drawSessions() {
  const rows = [...sessions.values()].slice(-12).reverse().map((s) =>
    `<tr><td>${s.user}</td><td>${s.nas}</td><td>${s.ip}</td><td>${bytes(s.octets)}</td></tr>`);
  document.querySelector("#sessions tbody").innerHTML = rows.join("");
  document.getElementById("session-count").textContent = `(${sessions.size} active)`;
}

function drawJobs() {
  document.getElementById("jobs").innerHTML = [...jobs.values()].map((j) =>
    `<div class="job">${j.job} ${j.percent}% ${j.state}
       <div class="bar"><div style="width:${j.percent}%"></div></div></div>`).join("");
}

subscribe("bandwidth", {
  sample(m) {
    const pts = series.get(m.iface) || [];
    pts.push({ t: m.ts, v: m.in_bps });
    while (pts.length > HISTORY) pts.shift();
    series.set(m.iface, pts);
    drawBandwidth();
  },
});

const session = (m) => {
  if (m.kind === "stop") sessions.delete(m.session);
  else sessions.set(m.session, m);
  drawSessions();
};
subscribe("sessions", { start: session, update: session, stop: session });

const fault = (m) => {
  const li = document.createElement("li");
  const t = new Date(m.ts * 1000).toLocaleTimeString();
  li.innerHTML = `<span class="sev ${m.severity}">${m.severity}</span> ${t} ${m.device} ${m.code}: ${m.text}`;
  const ul = document.getElementById("faults");
  ul.prepend(li);
  while (ul.children.length > 50) ul.lastChild.remove();
};
subscribe("faults", { critical: fault, major: fault, minor: fault, warning: fault });

subscribe("jobs", {
  progress(m) {
    jobs.set(m.job, m);
    if (m.state === "done") setTimeout(() => { jobs.delete(m.job); drawJobs(); }, 3000);
    drawJobs();
  },
});
