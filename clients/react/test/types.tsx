// Compiled by `npm run typecheck`: uses of the bindings that must
// type-check, and misuses that must not.
import { PulseProvider, StatusPill, useChannel, useLatest, usePulseStatus } from "@pulse-push/react";

interface Sample { iface: string; in_bps: number }

function Chart() {
  const { messages, status, refresh } = useChannel<Sample>("bandwidth", { mode: "interval", interval: 30000, limit: 100 });
  const { values } = useLatest<Sample>("bandwidth", "iface");
  const { lastUpdate } = usePulseStatus();
  void refresh;
  // @ts-expect-error: not a mode
  useChannel("x", { mode: "often" });
  return <div data-status={status}>{messages.map((m) => m.data.in_bps).join(",")}{Object.keys(values).length}{lastUpdate}</div>;
}

export function App() {
  return (
    <PulseProvider options={{ ws: "/ws" }}>
      <StatusPill labels={{ live: "Up" }} />
      <Chart />
    </PulseProvider>
  );
}
