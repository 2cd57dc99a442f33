// Compiled by `npm run typecheck` (tsc --noEmit): uses of the API that
// must type-check, and misuses that must not (@ts-expect-error fails the
// build when the line does compile).
import Pulse, { backoffDelay, compareIds, PulseError, type Message, type Status } from "../src/pulse.js";

const p = new Pulse({ ws: "/ws", transports: ["websocket", "longpoll"], token: async () => "t", maxAttempts: 10 });
const sub = p.subscribe<{ iface: string }>("bandwidth", (m: Message<{ iface: string }>) => m.data.iface, { interval: 30000 });
sub.setMode("manual");
void sub.refresh();
const id: string | null = sub.lastEventId;
const off = p.on("status", (s: Status, t) => t === "websocket" && s === "live");
off();
p.on("error", (e: PulseError) => e.code);
p.send<string>("jobs", { action: "cancel" }).then((r) => r.status + r.data.length);
const d: number = backoffDelay(3, 1000, 30000) + compareIds("1:0", "2:0");

// @ts-expect-error: not a transport
new Pulse({ transports: ["flash"] });
// @ts-expect-error: not a mode
sub.setMode("sometimes");
// @ts-expect-error: not an event
p.on("nope", () => {});
// @ts-expect-error: status is read-only
p.status = "live";

export { id, d };
