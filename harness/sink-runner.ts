/**
 * Child-process side of `startSinkProcess`: starts the sinks described by the JSON spec in argv[2] and
 * reports over IPC what the parent needs to measure (arrival times and source IPs, refusals, open and
 * peak connections), so sinks do not share an event loop with the engine under test.
 */
import { type Sink, startSink } from './sink.js';
import { reviveScript, type SinkProcessSpec } from './sink-process.js';

const specs = JSON.parse(process.argv[2] ?? '[]') as SinkProcessSpec[];
const sinks: Sink[] = [];
for (const spec of specs) {
  sinks.push(await startSink({ host: spec.host, port: spec.port, script: reviveScript(spec.script) }));
}
const sent = sinks.map(() => ({ arrivals: 0, refusals: 0, open: -1, max: -1 }));
// Sinks stamp each arrival when it happens; the report only carries it to the parent.
const report = setInterval(() => {
  sinks.forEach((s, i) => {
    const seen = sent[i]!;
    const arrivals = s.arrivals.slice(seen.arrivals).map((a) => ({ time: a.time, sourceIp: a.sourceIp }));
    const refusals = s.refusals.length - seen.refusals;
    const open = s.currentConnections();
    const max = s.maxConcurrentConnections();
    if (arrivals.length === 0 && refusals === 0 && open === seen.open && max === seen.max) return;
    seen.arrivals += arrivals.length;
    seen.refusals += refusals;
    seen.open = open;
    seen.max = max;
    process.send?.({ host: s.host, arrivals, refusals, open, max });
  });
}, 20);
process.send?.({ ready: true });
process.on('disconnect', () => {
  clearInterval(report);
  void Promise.all(sinks.map((s) => s.close())).then(() => process.exit(0));
});
