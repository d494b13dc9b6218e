/**
 * The routing rule: a stable per-recipient bucket under the share → engine. Same answer every time it is
 * asked, shares move recipients in one direction only, and the split matches the share.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressDomain, BUCKETS, rampBucket, routesToEngine } from '../sidecar/ramp/hash.js';
import { RampRouter } from '../sidecar/ramp/router.js';
import { SplitCounter } from '../sidecar/ramp/split.js';

const addrs = Array.from({ length: 20_000 }, (_, i) => `user${i}@example.com`);

test('the bucket is stable, in range, and ignores case and surrounding space', () => {
  for (const a of addrs.slice(0, 500)) {
    const b = rampBucket(a);
    assert.ok(Number.isInteger(b) && b >= 0 && b < BUCKETS);
    assert.equal(rampBucket(a.toUpperCase()), b);
    assert.equal(rampBucket(` ${a} `), b);
  }
  // Fixed values: a change of hash would re-route live traffic on upgrade, so it must be deliberate.
  assert.equal(rampBucket('alice@example.com'), 9593);
  assert.equal(rampBucket('bob@gmail.com'), 3437);
});

test('the engine share of many recipients is the configured share', () => {
  for (const share of [1, 10, 25, 50, 90]) {
    const n = addrs.filter((a) => routesToEngine(rampBucket(a), share)).length;
    const measured = (100 * n) / addrs.length;
    assert.ok(Math.abs(measured - share) < 1, `share ${share}% measured ${measured}%`);
  }
  assert.equal(addrs.filter((a) => routesToEngine(rampBucket(a), 0)).length, 0);
  assert.equal(addrs.filter((a) => routesToEngine(rampBucket(a), 100)).length, addrs.length);
});

test('raising a share only moves recipients to the engine; lowering only moves them back', () => {
  const shares = [0, 0.5, 5, 10, 10.25, 33.33, 50, 99.99, 100];
  for (const a of addrs.slice(0, 5000)) {
    const b = rampBucket(a);
    let wasEngine = false;
    for (const s of shares) {
      const now = routesToEngine(b, s);
      assert.ok(now || !wasEngine, `${a} left the engine when the share rose to ${s}%`);
      wasEngine = now;
    }
  }
});

test('only full addresses of ramped domains are routed; everything else is NOTFOUND', () => {
  const router = new RampRouter('freight:inet:127.0.0.1:2526', new SplitCounter());
  router.setShares([{ domain: 'example.com', percent: 100, changedAt: 1 }]);
  assert.deepEqual(router.answer('transport', 'a@example.com'), {
    status: 'OK',
    data: 'freight:inet:127.0.0.1:2526',
  });
  assert.deepEqual(router.answer('transport', 'a@EXAMPLE.com.'), {
    status: 'OK',
    data: 'freight:inet:127.0.0.1:2526',
  });
  for (const key of ['*', 'example.com', '@example.com', 'a@', 'sender@apps.test', 'a@sub.example.com', '']) {
    assert.deepEqual(router.answer('transport', key), { status: 'NOTFOUND' }, key);
  }
  assert.equal(router.answer('virtual', 'a@example.com').status, 'PERM');
  assert.equal(addressDomain('"x@y"@Example.ORG'), 'example.org');
});

test('the measured split counts each recipient once per share period, however often Postfix asks', () => {
  const counter = new SplitCounter();
  const router = new RampRouter('freight:inet:127.0.0.1:2526', counter);
  router.setShares([{ domain: 'example.com', percent: 30, changedAt: 1 }]);
  const rcpts = addrs.slice(0, 1000);
  for (let round = 0; round < 3; round++) for (const r of rcpts) router.answer('transport', r);
  const engine = rcpts.filter((r) => routesToEngine(rampBucket(r), 30)).length;
  assert.deepEqual(counter.take(), [{ domain: 'example.com', since: 1, engine, postfix: 1000 - engine }]);
  assert.deepEqual(counter.take(), []);

  // A new share period counts the same recipients again, under the new period.
  router.setShares([{ domain: 'example.com', percent: 0, changedAt: 2 }]);
  for (const r of rcpts) router.answer('transport', r.toUpperCase());
  assert.deepEqual(counter.take(), [{ domain: 'example.com', since: 2, engine: 0, postfix: 1000 }]);
});

test('the dedup memory is bounded: an evicted recipient is counted again', () => {
  const counter = new SplitCounter(10);
  for (let i = 0; i < 20; i++) counter.record('example.com', `u${i}@example.com`, 1, 'postfix');
  counter.record('example.com', 'u0@example.com', 1, 'postfix');
  counter.record('example.com', 'u19@example.com', 1, 'postfix');
  assert.deepEqual(counter.take(), [{ domain: 'example.com', since: 1, engine: 0, postfix: 21 }]);
});
