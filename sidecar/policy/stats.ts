/**
 * `freight policy stats`: the daemon answers on a unix socket in run-dir with a JSON snapshot of its
 * counters (the live numbers are in its memory; the saved ones lag by a snapshot interval).
 */
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { errorMessage, FreightError } from '../common/errors.js';
import { formatRate } from '../config/units.js';
import type { DecisionTotals, StoreHealth } from './decide.js';
import type { KeyCounters } from './key-counters.js';
import type { Limiter } from './limiter.js';
import { describeWindows } from './limits-config.js';
import type { ServerCounters } from './server.js';

export interface WindowUse {
  rate: string;
  used: number;
  limit: number;
}

export interface KeyStats {
  limit: string;
  key: string;
  windows: WindowUse[];
  /** Highest used/limit over the key's windows (1 = at the limit). */
  fill: number;
  rejected: number;
  lastRejectedAt: number | null;
}

export interface PolicyStats {
  pid: number;
  startedAt: number;
  at: number;
  stores: StoreHealth;
  decisions: DecisionTotals;
  connections: ServerCounters;
  limits: Array<{
    name: string;
    key: string;
    count: string;
    countAt: string;
    rates: string;
    keys: number;
    action: string;
  }>;
  /** The fullest keys first. */
  counters: KeyStats[];
  /** Keys with the most refusals first (only keys refused at least once). */
  mostLimited: KeyStats[];
}

export function statsSocketPath(runDir: string): string {
  return join(runDir, 'policy-stats.sock');
}

function keyStats(k: KeyCounters, now: number): KeyStats {
  const windows = k.windows.map((w, i) => ({
    rate: formatRate(k.rates[i]!),
    used: Math.round(w.count(now) * 100) / 100,
    limit: k.rates[i]!.count,
  }));
  return {
    limit: k.limit.name,
    key: k.key,
    windows,
    fill: Math.max(0, ...windows.map((w) => (w.limit > 0 ? w.used / w.limit : 1))),
    rejected: k.rejected,
    lastRejectedAt: k.lastRejectedAt || null,
  };
}

export function collectStats(
  limiter: Limiter,
  meta: { startedAt: number; stores: StoreHealth; decisions: DecisionTotals; connections: ServerCounters },
  top = 50,
  now = Date.now(),
): PolicyStats {
  const all: KeyStats[] = [];
  for (const lc of limiter.counters) for (const k of lc.keys.values()) all.push(keyStats(k, now));
  return {
    pid: process.pid,
    startedAt: meta.startedAt,
    at: now,
    stores: { ...meta.stores },
    decisions: { ...meta.decisions },
    connections: { ...meta.connections },
    limits: limiter.counters.map((lc) => ({
      name: lc.limit.name,
      key: lc.limit.keyLabel,
      count: lc.limit.count,
      countAt: lc.limit.countAt.toLowerCase(),
      rates: describeWindows(lc.limit.windows),
      keys: lc.keys.size,
      action: lc.limit.action,
    })),
    counters: [...all].sort((a, b) => b.fill - a.fill).slice(0, top),
    mostLimited: all
      .filter((k) => k.rejected > 0)
      .sort((a, b) => b.rejected - a.rejected)
      .slice(0, top),
  };
}

/** Serve `collect()` as JSON to each connection on `path`. */
export async function serveStats(path: string, collect: () => PolicyStats): Promise<net.Server> {
  if (existsSync(path)) unlinkSync(path);
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.end(JSON.stringify(collect()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path }, () => resolve());
  });
  return server;
}

export function fetchStats(runDir: string, timeoutMs = 5000): Promise<PolicyStats> {
  const path = statsSocketPath(runDir);
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = net.connect({ path });
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new FreightError('POLICY_UNAVAILABLE', `freight policy did not answer on ${path}`));
    });
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) =>
      reject(
        new FreightError(
          'POLICY_UNAVAILABLE',
          `freight policy is not running (${path}: ${errorMessage(err)})`,
        ),
      ),
    );
    socket.on('end', () => {
      try {
        resolve(JSON.parse(text) as PolicyStats);
      } catch {
        reject(new FreightError('POLICY_UNAVAILABLE', `unreadable answer from freight policy on ${path}`));
      }
    });
  });
}
