/**
 * The one wait of the test world and the benchmarks: polls a probe until it gives a truthy value (the
 * outcomes under test arrive asynchronously: at a sink, in SQLite, in a log) and returns that value, or
 * fails with what was awaited once `timeoutMs` has passed.
 */
export async function until<T>(
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
  /** Probes that start a process or make a request poll less often than ones that read memory. */
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
