// The dashboard of `make demo`: pulse.js through its React bindings, uPlot
// for the charts. One pulse.v1 WebSocket carries every widget's channel
// (EventSource, then long-poll, when a proxy refuses it).
//
// Query arguments, for tests and benchmarks: ws=/no-ws and sub=/no-sse/{channel}
// (locations that refuse WebSocket and EventSource: watch the fallback),
// transports=eventsource,longpoll (the client's ladder), interval=<ms> (what
// "Every 30 s" means), minDelay/maxDelay=<ms> (reconnect backoff), probe=1
// (records XADD/PUBLISH-to-DOM latencies in window.__latency).

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { createRoot } from "react-dom/client";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import { PulseProvider, StatusPill, useChannel, useLatest, usePulse, usePulseStatus } from "@pulse-push/react";

const Q = new URLSearchParams(location.search);
const INTERVAL = +(Q.get("interval") || 30000);
const SEVERITIES = ["critical", "major", "minor", "warning"];
const PROBE = Q.get("probe") === "1";
if (PROBE) window.__latency = [];

function pulseOptions() {
  const o = { ws: Q.get("ws") || "/ws", sub: Q.get("sub") || "/sub/{channel}", maxDelay: +(Q.get("maxDelay") || 30000) };
  if (Q.get("transports")) o.transports = Q.get("transports").split(",");
  if (Q.get("minDelay")) o.minDelay = +Q.get("minDelay");
  return o;
}

// ------------------------------------------------------------ formatting

function bps(v) {
  if (v == null) return "";
  const u = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}

function bytes(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(1)} ${u[i]}`;
}

const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "never");

/** PROBE: the delay from the generator's timestamp to this commit. */
function useLatencyProbe(widget, messages) {
  const seen = useRef(null);
  useLayoutEffect(() => {
    if (!PROBE || !messages.length) return;
    const now = Date.now();
    let i = messages.length - 1;
    while (i >= 0 && messages[i] !== seen.current) i--;
    for (const m of messages.slice(i + 1)) {
      if (m.data && m.data.ts) window.__latency.push([widget, now - m.data.ts * 1000]);
    }
    seen.current = messages[messages.length - 1];
  }, [messages]);
}

// --------------------------------------------------------------- widgets

function useMode() {
  const [mode, setMode] = useState("live");
  const opts = mode === "interval" ? { interval: INTERVAL } : { mode };
  return [mode, setMode, opts];
}

function ModeSwitch({ mode, setMode, refresh }) {
  const every = INTERVAL % 1000 ? `${INTERVAL} ms` : `${INTERVAL / 1000} s`;
  const b = (m, label) => (
    <button className={mode === m ? "on" : ""} aria-pressed={mode === m} data-mode={m} onClick={() => setMode(m)}>
      {label}
    </button>
  );
  return (
    <div className="modes">
      {b("live", "Live")}
      {b("interval", `Every ${every}`)}
      {b("manual", "Manual")}
      {mode === "manual" && (
        <button className="refresh" data-action="refresh" onClick={() => refresh()}>
          Refresh
        </button>
      )}
    </div>
  );
}

function Widget({ name, title, extra, mode, setMode, state, wide, children }) {
  return (
    <section className={wide ? "wide" : ""} data-widget={name} data-mode={mode} data-count={state.count}>
      <header>
        <h2>
          {title} {extra}
        </h2>
        <ModeSwitch mode={mode} setMode={setMode} refresh={state.refresh} />
      </header>
      {children}
      <footer>updated {clock(state.lastUpdate)}</footer>
    </section>
  );
}

function IfaceChart({ iface, data }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const axis = { stroke: "#9fb4c7", grid: { stroke: "#222a33" }, ticks: { stroke: "#222a33" } };
    plot.current = new uPlot(
      {
        title: iface,
        width: Math.max(300, el.current.clientWidth),
        height: 170,
        scales: { x: { time: true } },
        series: [
          {},
          { label: "in", stroke: "#4dabf7", width: 2, value: (u, v) => bps(v) },
          { label: "out", stroke: "#ff922b", width: 2, value: (u, v) => bps(v) },
        ],
        axes: [axis, { ...axis, size: 96, values: (u, vals) => vals.map(bps) }],
        legend: { live: false },
      },
      [data.ts, data.inb, data.outb],
      el.current,
    );
    return () => plot.current.destroy();
  }, [iface]);
  useEffect(() => {
    if (plot.current) plot.current.setData([data.ts, data.inb, data.outb]);
  }, [data]);
  return <div className="chart" ref={el} data-iface={iface} data-points={data.ts.length} />;
}

function Bandwidth() {
  const [mode, setMode, opts] = useMode();
  const ch = useChannel("bandwidth", { ...opts, events: ["sample"], limit: 4 * 240 });
  useLatencyProbe("bandwidth", ch.messages);
  const byIface = useMemo(() => {
    const g = {};
    for (const { data: d } of ch.messages) {
      if (!d || !d.iface) continue;
      const s = (g[d.iface] = g[d.iface] || { ts: [], inb: [], outb: [] });
      s.ts.push(d.ts);
      s.inb.push(d.in_bps);
      s.outb.push(d.out_bps);
    }
    return g;
  }, [ch.messages]);
  return (
    <Widget name="bandwidth" title="Interface bandwidth" mode={mode} setMode={setMode} state={ch} wide>
      <div className="charts">
        {Object.keys(byIface)
          .sort()
          .map((i) => (
            <IfaceChart key={i} iface={i} data={byIface[i]} />
          ))}
      </div>
    </Widget>
  );
}

function Sessions() {
  const [mode, setMode, opts] = useMode();
  const ch = useLatest("sessions", "session", { ...opts, events: ["start", "update", "stop"], limit: 200 });
  const rows = useMemo(
    () =>
      Object.values(ch.values)
        .sort((a, b) => b.start - a.start)
        .slice(0, 12),
    [ch.values],
  );
  const active = Object.values(ch.values).filter((s) => s.kind !== "stop").length;
  return (
    <Widget name="sessions" title="RADIUS sessions" extra={<small>({active} active)</small>} mode={mode} setMode={setMode} state={ch}>
      <table>
        <thead>
          <tr>
            <th>user</th>
            <th>NAS</th>
            <th>address</th>
            <th>traffic</th>
            <th>state</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => (
            <tr key={s.session} className={`row-${s.kind}`} data-session={s.session} data-kind={s.kind}>
              <td>{s.user}</td>
              <td>{s.nas}</td>
              <td>{s.ip}</td>
              <td>{bytes(s.octets)}</td>
              <td>{s.kind}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Widget>
  );
}

function Faults() {
  const [mode, setMode, opts] = useMode();
  const ch = useChannel("faults", { ...opts, events: SEVERITIES, limit: 100 });
  useLatencyProbe("faults", ch.messages);
  const [toasts, setToasts] = useState([]);
  const seen = useRef(null);
  useEffect(() => {
    const ms = ch.messages;
    let i = ms.length - 1;
    while (i >= 0 && ms[i] !== seen.current) i--;
    const fresh = ms.slice(i + 1).filter((m) => m.data && (m.data.severity === "critical" || m.data.severity === "major"));
    seen.current = ms[ms.length - 1] || null;
    if (!fresh.length) return;
    setToasts((t) => [...t, ...fresh].slice(-4));
    const timer = setTimeout(() => setToasts((t) => t.filter((x) => !fresh.includes(x))), 6000);
    return () => clearTimeout(timer);
  }, [ch.messages]);
  return (
    <Widget name="faults" title="Faults" mode={mode} setMode={setMode} state={ch}>
      <ul className="faults">
        {[...ch.messages].reverse().map((m) => (
          <li key={m.id} data-id={m.id} data-severity={m.data.severity}>
            <span className={`sev ${m.data.severity}`}>{m.data.severity}</span> {new Date(m.data.ts * 1000).toLocaleTimeString()} {m.data.device} {m.data.code}: {m.data.text}
          </li>
        ))}
      </ul>
      <div className="toasts">
        {toasts.map((m) => (
          <div key={m.id} className={`toast ${m.data.severity}`} role="alert">
            <b>{m.data.severity}</b> {m.data.device}: {m.data.text}
          </div>
        ))}
      </div>
    </Widget>
  );
}

function Job({ job }) {
  const pulse = usePulse();
  const [note, setNote] = useState("");
  const act = (action) => {
    setNote(`${action}…`);
    pulse.send("jobs", { action, job: job.job }).then(
      (r) => {
        const d = safeJson(r.data);
        setNote(r.status === 200 ? `${action}: ok` : `${action}: ${r.status} ${(d && d.error) || ""}`);
      },
      (e) => setNote(`${action}: ${e.code}`),
    );
  };
  const open = job.state === "running" || job.state === "paused";
  return (
    <div className="job" data-job={job.job} data-state={job.state}>
      <div className="jobline">
        <b>{job.job}</b> {job.percent}% <span className={`state ${job.state}`}>{job.state}</span>
        <span className="buttons">
          {job.state === "running" && (
            <button data-action="pause" onClick={() => act("pause")}>
              Pause
            </button>
          )}
          {job.state === "paused" && (
            <button data-action="resume" onClick={() => act("resume")}>
              Resume
            </button>
          )}
          {open && (
            <button data-action="cancel" onClick={() => act("cancel")}>
              Cancel
            </button>
          )}
        </span>
      </div>
      <div className="bar">
        <div style={{ width: `${job.percent}%` }} />
      </div>
      <div className="note">{note}</div>
    </div>
  );
}

function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

function Jobs() {
  const [mode, setMode, opts] = useMode();
  const ch = useLatest("jobs", "job", { ...opts, events: ["progress"], limit: 6 });
  const jobs = Object.values(ch.values).reverse();
  return (
    <Widget name="jobs" title="Jobs" mode={mode} setMode={setMode} state={ch}>
      {jobs.map((j) => (
        <Job key={j.job} job={j} />
      ))}
    </Widget>
  );
}

// ------------------------------------------------------------ the page

function Header({ me, onLogout }) {
  const { lastUpdate, transport } = usePulseStatus();
  const [, tick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  const pulse = usePulse();
  useEffect(() => {
    window.__pulse = pulse; // tests and the console
  }, [pulse]);
  const age = lastUpdate ? Math.round((Date.now() - lastUpdate) / 1000) : null;
  return (
    <header className="top">
      <h1>
        Network operations <small>{me.name}</small>
      </h1>
      <div className="status">
        <StatusPill />
        <span className="transport" data-transport={transport || ""}>
          {transport || "—"}
        </span>
        <span className="updated" data-last-update={lastUpdate || ""}>
          last update {lastUpdate ? `${clock(lastUpdate)} (${age} s ago)` : "never"}
        </span>
        <button className="logout" onClick={onLogout}>
          Log out
        </button>
      </div>
    </header>
  );
}

function Dashboard({ me, onLogout }) {
  return (
    <>
      <Header me={me} onLogout={onLogout} />
      <main>
        <Bandwidth />
        <Sessions />
        <Faults />
        <Jobs />
      </main>
    </>
  );
}

function Login({ onLogin }) {
  const [tenants, setTenants] = useState([]);
  const [error, setError] = useState("");
  useEffect(() => {
    fetch("/api/tenants")
      .then((r) => r.json())
      .then(setTenants, () => setError("the demo's API is not answering"));
  }, []);
  const login = async (tenant) => {
    const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tenant }) });
    if (r.ok) onLogin(await r.json());
    else setError(`login failed: ${r.status}`);
  };
  return (
    <div className="login">
      <h1>Network operations</h1>
      <p>Sign in as an operator of one of the two tenants. Each sees only its own devices.</p>
      {tenants.map((t) => (
        <button key={t.id} data-tenant={t.id} onClick={() => login(t.id)}>
          {t.name}
        </button>
      ))}
      {error && <p className="error">{error}</p>}
    </div>
  );
}

function App() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    fetch("/api/whoami")
      .then((r) => (r.ok ? r.json() : null))
      .then(setMe, () => setMe(null));
  }, []);
  const logout = async () => {
    await fetch("/api/logout", { method: "POST" });
    setMe(null);
  };
  if (me === undefined) return null;
  if (!me) return <Login onLogin={setMe} />;
  return (
    <PulseProvider key={me.tenant} options={pulseOptions()}>
      <Dashboard me={me} onLogout={logout} />
    </PulseProvider>
  );
}

createRoot(document.getElementById("root")).render(<App />);
