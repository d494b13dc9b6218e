/**
 * The ramp's routing rule. Each recipient address gets a stable bucket in [0, 10000) from a hash of the
 * address alone, and a domain at share S percent sends a recipient to the engine iff bucket < S × 100.
 *
 * Why this shape: the bucket never changes, so Postfix gets the same answer at smtpd and at every delivery
 * attempt (a deferred recipient does not switch path while the share stays put), every ramp server on
 * every host agrees without talking to the others, and because the threshold is a prefix of the bucket
 * range, raising the share only moves recipients postfix → engine and lowering it only engine → postfix.
 */
import { createHash } from 'node:crypto';

/** Buckets per percent point: shares have two decimals (0.25 % is a valid share). */
export const BUCKETS_PER_PERCENT = 100;
export const BUCKETS = 100 * BUCKETS_PER_PERCENT;

/** The form of an address that is hashed: Postfix may vary the case between lookups, the hash must not. */
export function normalizeAddress(address: string): string {
  return address.trim().toLowerCase();
}

/** The recipient's bucket in [0, BUCKETS). */
export function rampBucket(address: string): number {
  const digest = createHash('sha256').update(normalizeAddress(address)).digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** True if a recipient in `bucket` goes to the engine at `percent` (0..100). */
export function routesToEngine(bucket: number, percent: number): boolean {
  return bucket < Math.round(percent * BUCKETS_PER_PERCENT);
}

/**
 * The domain part of a full address as Postfix asks it (`user@Example.COM.` → `example.com`), or null for
 * keys that are not addresses (Postfix also asks for `*`). The last `@` splits, as a quoted local part
 * may itself contain one.
 */
export function addressDomain(key: string): string | null {
  const at = key.lastIndexOf('@');
  if (at <= 0 || at === key.length - 1) return null;
  const domain = key
    .slice(at + 1)
    .toLowerCase()
    .replace(/\.$/, '');
  return domain.length > 0 ? domain : null;
}
