/**
 * Minimal structured logger: one line per event on stderr, syslog-like so operators can grep it
 * next to Postfix's own log: `2026-03-05T06:26:05.404Z freight/engine[1234]: warning: text key=value`.
 */
export type LogLevel = 'debug' | 'info' | 'warning' | 'error';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

let threshold: number =
  order[(process.env.FREIGHT_LOG_LEVEL as LogLevel | undefined) ?? 'info'] ?? order.info;
let sink: (line: string) => void = (line) => process.stderr.write(line);

export function setLogLevel(level: LogLevel): void {
  threshold = order[level];
}

/** Redirect log output (tests capture it). */
export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

function formatValue(v: unknown): string {
  const s = typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v);
  return /[\s="]/.test(s ?? '') ? JSON.stringify(s) : String(s);
}

export function createLogger(component: string): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    let line = `${new Date().toISOString()} freight/${component}[${process.pid}]: ${level}: ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    }
    sink(`${line}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warning', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${component}/${sub}`),
  };
}
