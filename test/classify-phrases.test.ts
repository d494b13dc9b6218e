/**
 * The one-pass phrase matcher: every term whose pieces occur (in order, for several pieces), whatever
 * the case of the reply, including terms that share a piece with another term.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PhraseSet } from '../sidecar/classify/phrases.js';

const set = new PhraseSet([
  { id: 10, pieces: ['user unknown'] },
  { id: 11, pieces: ['denied'] },
  { id: 12, pieces: ['denied'] },
  { id: 13, pieces: ['sender domain', 'does not exist'] },
  { id: 14, pieces: ['unknown'] },
  { id: 15, pieces: ['_416 [416]'] },
]);
const found = (text: string) => set.match(text).sort((a, b) => a - b);

test('finds every term that occurs, overlapping ones and terms sharing a piece included', () => {
  assert.deepEqual(found('550 5.1.1 <a@example.com>: User Unknown in local recipient table'), [10, 14]);
  assert.deepEqual(found('550 5.7.1 ACCESS DENIED'), [11, 12]);
  assert.deepEqual(found('550 5.1.1 Invalid recipient. OFR_416 [416]'), [15]);
  assert.deepEqual(found('250 2.0.0 Ok: queued'), []);
});

test('pieces of one term must occur in their order', () => {
  assert.deepEqual(found('553 Sender domain example.org does not exist'), [13]);
  assert.deepEqual(found('553 example.org does not exist as a sender domain'), []);
});

test('characters the phrases never use (accents, other scripts) only reset the match', () => {
  assert.deepEqual(found('550 Benutzer unbekannt – user unknown ✗'), [10, 14]);
  assert.deepEqual(found('550 user unknöwn'), []);
  assert.deepEqual(found(''), []);
});
