/**
 * DKIM private keys from `domain-key selector,domain,path`: read once at load, their type
 * (RSA or Ed25519) detected from the PEM itself, so the signer never touches the disk per message.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { errorMessage, FreightError } from '../common/errors.js';
import type { DomainKey } from '../config/model.js';

export type DkimKeyType = 'rsa' | 'ed25519';

export interface LoadedDomainKey {
  selector: string;
  domain: string;
  keyPath: string;
  type: DkimKeyType;
  key: KeyObject;
}

/** Parses one PEM private key; DKIM_BAD_KEY if it is unreadable or neither RSA nor Ed25519. */
export function parsePrivateKey(pem: string | Buffer, where: string): { type: DkimKeyType; key: KeyObject } {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new FreightError('DKIM_BAD_KEY', `${where}: not a PEM private key: ${errorMessage(err)}`, {
      where,
    });
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') {
    throw new FreightError('DKIM_BAD_KEY', `${where}: ${type} keys cannot sign DKIM (use RSA or Ed25519)`, {
      where,
      type,
    });
  }
  return { type, key };
}

/** The loaded `domain-key`s, looked up by signing domain. */
export class DomainKeyRing {
  private readonly byDomain = new Map<string, LoadedDomainKey[]>();

  constructor(keys: LoadedDomainKey[]) {
    for (const k of keys) {
      const list = this.byDomain.get(k.domain) ?? [];
      list.push(k);
      this.byDomain.set(k.domain, list);
    }
  }

  get size(): number {
    let n = 0;
    for (const list of this.byDomain.values()) n += list.length;
    return n;
  }

  /**
   * Key for signing as `domain`: an exact match first (the first `domain-key` line for it, or the one with
   * `selector`), else the nearest parent domain's key, which still aligns with DMARC's relaxed mode.
   */
  find(domain: string, selector?: string): LoadedDomainKey | null {
    let name = domain.toLowerCase().replace(/\.$/, '');
    for (;;) {
      const list = this.byDomain.get(name);
      const hit = selector ? list?.find((k) => k.selector === selector) : list?.[0];
      if (hit) return hit;
      const dot = name.indexOf('.');
      // Stop before a bare TLD: a key for "com" must never sign everything under it.
      if (dot < 0 || name.indexOf('.', dot + 1) < 0) return null;
      name = name.slice(dot + 1);
    }
  }
}

/**
 * Loads every configured key. A key that cannot be read is an error for the whole set (DKIM_BAD_KEY):
 * starting with half the keys would silently send mail unsigned.
 */
export function loadDomainKeys(keys: DomainKey[]): DomainKeyRing {
  const loaded: LoadedDomainKey[] = [];
  for (const k of keys) {
    const where = `domain-key ${k.selector},${k.domain}`;
    let pem: Buffer;
    try {
      pem = readFileSync(k.keyPath);
    } catch (err) {
      throw new FreightError('DKIM_BAD_KEY', `${where}: cannot read ${k.keyPath}: ${errorMessage(err)}`, {
        path: k.keyPath,
      });
    }
    const { type, key } = parsePrivateKey(pem, `${where} (${k.keyPath})`);
    loaded.push({ selector: k.selector, domain: k.domain.toLowerCase(), keyPath: k.keyPath, type, key });
  }
  return new DomainKeyRing(loaded);
}
