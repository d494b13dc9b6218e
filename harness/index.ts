/**
 * harness/: the one folder that test/ and bench/ share (neither imports the other). The test world
 * (loopback DNS, sink MX servers, private Postfix instances, Freight daemons as child processes), the
 * SMTP/LMTP load generator and the one wait helper; nothing here imports test/ or bench/.
 */
export { type TestCertificate, testCertificate } from './cert.js';
export {
  type DnsQuery,
  type DnsRecordType,
  type DnsServerOptions,
  type MxRecord,
  type RecordOptions,
  splitTxt,
  startDnsServer,
  type TestDns,
} from './dns.js';
export { addr, assertLoopback, freePort, isLoopbackV4, testSubnet } from './ports.js';
export { type Sink, type SinkOptions, startSink } from './sink.js';
export type { Arrival, ConnectionRecord, Refusal, RefusalStage } from './sink-records.js';
export type { SinkDefer, SinkRateLimit, SinkReply, SinkRule, SinkScript } from './sink-script.js';
export { until } from './wait.js';
