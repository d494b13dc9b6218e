/**
 * How a sink MX answers: the script a test hands to `startSink` / `sink.setScript`, and the small
 * amount of state evaluating it needs (a seeded RNG so deferrals repeat run to run, and the
 * sliding windows behind `rateLimit`).
 */
import { WorldError } from './errors.js';

export interface SinkReply {
  /** SMTP reply code, 200..599. */
  code: number;
  /** Reply text as sent, e.g. '5.1.1 User unknown' (the sink adds no enhanced status code itself). */
  message: string;
}

/** First rule whose `match` fits the address decides; a 2xx rule explicitly accepts. */
export interface SinkRule extends SinkReply {
  match: RegExp;
}

export interface SinkDefer {
  /** Chance 0..1 that a recipient (at: 'rcpt') or a message (at: 'data') is deferred. */
  probability: number;
  /** RNG seed, so the same script defers the same recipients every run (default 1). */
  seed?: number;
  at?: 'rcpt' | 'data';
  /** Default 451. */
  code?: number;
  /** Default '4.7.1 Try again later'. */
  message?: string;
}

export interface SinkRateLimit {
  /** More than `max` accepted messages inside `windowMs` and the next MAIL FROM gets the reply. */
  max: number;
  windowMs: number;
  /** Count per client source IP instead of for the whole sink. */
  perSourceIp?: boolean;
  /** Default 421 (which also closes the connection, as ISPs do). */
  code?: number;
  /** Default '4.7.0 Too many messages, slow down'. */
  message?: string;
}

export interface SinkScript {
  /** Extra wait before the 220 greeting (smtp-server itself already waits ~100 ms for early talkers). */
  bannerDelayMs?: number;
  /** Refuse the connection with this reply instead of the greeting, then close. */
  connectReply?: SinkReply;
  /** Rules on the envelope sender at MAIL FROM ('' is the null sender). */
  mailFrom?: SinkRule[];
  /** Rules on each recipient at RCPT TO. */
  rcptTo?: SinkRule[];
  /** Rules on the recipients at the end of DATA: the first rule any recipient matches decides. */
  data?: SinkRule[];
  /** Reply to an otherwise accepted message: a 2xx sets the 250 text, 4xx/5xx rejects it. */
  dataReply?: SinkReply;
  /** Hold the end-of-DATA reply this long (a slow receiver). */
  dataDelayMs?: number;
  /** After this many accepted messages on one connection the next MAIL FROM gets `maxMessagesReply`. */
  maxMessagesPerConnection?: number;
  /** Default 421 '4.7.0 Too many messages on this connection' (421 closes the connection). */
  maxMessagesReply?: SinkReply;
  defer?: SinkDefer;
  rateLimit?: SinkRateLimit;
  /** Destroy the socket as soon as message data arrives: no reply, no arrival. */
  dropDuringData?: boolean;
}

/** Deterministic PRNG (mulberry32), uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkReply(reply: SinkReply | undefined, what: string): void {
  if (!reply) return;
  if (!Number.isInteger(reply.code) || reply.code < 200 || reply.code > 599) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', `${what}: reply code must be 200..599, got ${reply.code}`);
  }
  if (/[\r\n]/.test(reply.message)) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', `${what}: reply text must be one line`);
  }
}

function checkFailure(code: number | undefined, what: string): void {
  if (code !== undefined && (!Number.isInteger(code) || code < 400 || code > 599)) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', `${what}: code must be 4xx or 5xx, got ${code}`);
  }
}

/** Rejects scripts that would make the sink misbehave in ways the test did not ask for. */
export function validateScript(script: SinkScript): void {
  checkReply(script.connectReply, 'connectReply');
  checkFailure(script.connectReply?.code, 'connectReply');
  checkReply(script.dataReply, 'dataReply');
  checkReply(script.maxMessagesReply, 'maxMessagesReply');
  checkFailure(script.maxMessagesReply?.code, 'maxMessagesReply');
  for (const [what, rules] of [
    ['mailFrom', script.mailFrom],
    ['rcptTo', script.rcptTo],
    ['data', script.data],
  ] as const) {
    for (const rule of rules ?? []) checkReply(rule, what);
  }
  const d = script.defer;
  if (d && (!(d.probability >= 0 && d.probability <= 1) || Number.isNaN(d.probability))) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', `defer.probability must be 0..1, got ${d.probability}`);
  }
  checkFailure(d?.code, 'defer');
  const r = script.rateLimit;
  if (r && !(r.max >= 0 && r.windowMs > 0)) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', 'rateLimit needs max >= 0 and windowMs > 0');
  }
  checkFailure(r?.code, 'rateLimit');
  const n = script.maxMessagesPerConnection;
  if (n !== undefined && !(Number.isInteger(n) && n >= 0)) {
    throw new WorldError('WORLD_SINK_BAD_SCRIPT', `maxMessagesPerConnection must be >= 0, got ${n}`);
  }
}

/** The first rule matching any of the addresses. */
export function matchRule(rules: SinkRule[] | undefined, addresses: string[]): SinkRule | undefined {
  if (!rules) return undefined;
  for (const rule of rules) {
    for (const address of addresses) {
      rule.match.lastIndex = 0; // a /g or /y RegExp keeps state between test() calls
      if (rule.match.test(address)) return rule;
    }
  }
  return undefined;
}

/** A script plus the state that evaluating it accumulates; replaced wholesale by setScript. */
export class ScriptState {
  readonly script: SinkScript;
  private readonly random: () => number;
  private readonly accepted = new Map<string, number[]>();

  constructor(script: SinkScript) {
    validateScript(script);
    this.script = script;
    this.random = seededRandom(script.defer?.seed ?? 1);
  }

  /** The deferral reply if this recipient/message loses the dice roll at `stage`. */
  deferral(stage: 'rcpt' | 'data'): SinkReply | undefined {
    const d = this.script.defer;
    if (!d || (d.at ?? 'rcpt') !== stage) return undefined;
    if (this.random() >= d.probability) return undefined;
    return { code: d.code ?? 451, message: d.message ?? '4.7.1 Try again later' };
  }

  /** The rate-limit reply if `sourceIp` (or the sink) is over its window at `now`. */
  rateLimited(sourceIp: string, now: number): SinkReply | undefined {
    const r = this.script.rateLimit;
    if (!r) return undefined;
    const times = this.window(r.perSourceIp ? sourceIp : '*', now - r.windowMs);
    if (times.length < r.max) return undefined;
    return { code: r.code ?? 421, message: r.message ?? '4.7.0 Too many messages, slow down' };
  }

  noteAccepted(sourceIp: string, now: number): void {
    const r = this.script.rateLimit;
    if (!r) return;
    this.window(r.perSourceIp ? sourceIp : '*', now - r.windowMs).push(now);
  }

  private window(key: string, since: number): number[] {
    let times = this.accepted.get(key);
    if (!times) {
      times = [];
      this.accepted.set(key, times);
    }
    let drop = 0;
    while (drop < times.length && (times[drop] ?? 0) <= since) drop++;
    if (drop > 0) times.splice(0, drop);
    return times;
  }
}
