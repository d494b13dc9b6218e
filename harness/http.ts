/** A small HTTP client for API tests that can choose its loopback source address (to test CIDR rules). */
import http from 'node:http';
import { assertLoopback } from './ports.js';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked field by field in the tests.
  json: any;
}

export function httpCall(
  base: { host: string; port: number },
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; from?: string } = {},
): Promise<HttpResult> {
  assertLoopback(base.host);
  if (opts.from) assertLoopback(opts.from);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = {};
  if (opts.key !== undefined) headers['x-api-key'] = opts.key;
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.host, port: base.port, method, path, headers, localAddress: opts.from, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let json: unknown = null;
          if (String(res.headers['content-type']).includes('json')) json = JSON.parse(text);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
