import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AcctRecord } from '../sidecar/acct/record.js';
import { BounceClassifier } from '../sidecar/classify/classifier.js';
import { Ingest } from '../sidecar/tailer/ingest.js';
import { LogClock, newPrefix, parsePrefix } from '../sidecar/tailer/prefix.js';

const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`./fixtures/maillog/${name}`, import.meta.url)), 'utf8');

const classifier = BounceClassifier.load();

function ingest(
  text: string,
  opts: { tz?: string; ref?: number; engine?: { host: string; port: number } } = {},
) {
  const ing = new Ingest({
    timeZone: opts.tz ?? 'UTC',
    referenceMs: opts.ref ?? Date.UTC(2026, 10, 28),
    classifier,
    engine: opts.engine ?? null,
  });
  ing.text(text);
  return { ing, ...ing.take() };
}

describe('maillog prefixes', () => {
  it('reads all four timestamp shapes to the same instant', () => {
    const { rows, ing } = ingest(fixture('prefix-variants.log'), {
      tz: 'Europe/Berlin',
      ref: Date.UTC(2026, 5, 1),
    });
    assert.equal(ing.stats.kinds.unknown, undefined);
    const at = Date.UTC(2026, 2, 5, 5, 26, 5);
    const byRcpt = new Map(rows.map((r) => [r.rcpt, r]));
    assert.equal(byRcpt.get('bsd@example.com')!.timeLogged, at);
    assert.equal(byRcpt.get('maillogfile@example.com')!.timeLogged, at);
    assert.equal(byRcpt.get('rfc3339@example.com')!.timeLogged, at + 404);
    assert.equal(byRcpt.get('rfc5424@example.com')!.timeLogged, at + 404);
    assert.equal(byRcpt.get('sd@example.com')!.timeLogged, at);
  });

  it('takes fields from each shape: long ids, bare to=, orig_to, custom syslog_name, submission smtpd', () => {
    const { rows } = ingest(fixture('prefix-variants.log'), {
      tz: 'Europe/Berlin',
      ref: Date.UTC(2026, 5, 1),
    });
    const bsd = rows.find((r) => r.rcpt === 'bsd@example.com')!;
    assert.equal(bsd.postfixQueueId, '4ZQkXb2nL1z9tB');
    assert.equal(bsd.type, 'd');
    assert.equal(bsd.dsnMta, 'mx.example.com (192.0.2.1)');
    const t = rows.find((r) => r.rcpt === 'rfc3339@example.com')!;
    assert.equal(t.type, 't');
    assert.equal(t.orcpt, 'alias@example.org');
    assert.equal(t.srcMta, 'app.example.net[198.51.100.7]');
    assert.equal(t.dsnStatus, '4.2.2');
    assert.equal(t.dsnDiag, 'smtp;452 4.2.2 Mailbox full');
    assert.equal(t.bounceCat, 'quota-issues');
    const b = rows.find((r) => r.rcpt === 'rfc5424@example.com')!;
    assert.equal(b.type, 'b');
    assert.equal(b.bounceCat, 'bad-mailbox');
  });

  it('infers the year of year-less stamps across New Year in the configured zone', () => {
    const clock = new LogClock('America/New_York', Date.UTC(2027, 0, 1, 12));
    const pre = newPrefix();
    assert.ok(parsePrefix('Dec 31 23:59:59 h postfix/qmgr[1]: x', clock, pre));
    assert.equal(pre.time, Date.UTC(2027, 0, 1, 4, 59, 59));
    assert.ok(parsePrefix('Jan  1 00:00:01 h postfix/qmgr[1]: x', clock, pre));
    assert.equal(pre.time, Date.UTC(2027, 0, 1, 5, 0, 1));
    // Summer time in the zone: UTC-4.
    assert.ok(parsePrefix('Jul  4 12:00:00 h postfix/qmgr[1]: x', clock, pre));
    assert.equal(pre.time, Date.UTC(2027, 6, 4, 16, 0, 0));
  });

  it('counts and samples lines it cannot read, and keeps going', () => {
    const text = [
      'garbage that is no log line',
      'Mar  5 06:26:05 mx1 dovecot: imap-login: Login: user=<x>',
      'Mar  5 06:26:05 mx1 postfix/smtp[1]: ABCDEF123: something new in a later Postfix',
      'Mar  5 06:26:06 mx1 postfix/smtp[1]: ABCDEF124: to=<ok@example.com>, relay=x[192.0.2.1]:25, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (250 ok)',
    ].join('\n');
    const { ing, rows } = ingest(text, { ref: Date.UTC(2026, 5, 1) });
    assert.equal(ing.stats.kinds.unknown, 2);
    assert.equal(ing.stats.kinds.foreign, 1);
    assert.equal(ing.stats.unknownSamples.length, 2);
    assert.equal(rows.length, 1);
  });
});

describe('rows from a log written by Postfix 3.7', () => {
  const { rows, ing, suppress } = ingest(fixture('postfix-3.7-capture.log'), {
    engine: { host: '127.0.0.1', port: 22604 },
  });
  const of = (type: string, rcpt: string) => rows.filter((r) => r.type === type && r.rcpt === rcpt);

  it('reads every line', () => {
    assert.equal(ing.stats.kinds.unknown, undefined);
    assert.equal(ing.stats.lines, 187);
  });

  it('writes d/t/b rows with envelope, message-id, size and times joined by queue id', () => {
    const [d] = of('d', 'g@ok.test');
    assert.ok(d);
    assert.equal(d.path, 'postfix');
    assert.equal(d.postfixQueueId, 'E41C416411A');
    assert.equal(d.orig, 'sender@app.test');
    assert.equal(d.messageId, '20261127201842.007355@vm');
    assert.equal(d.dlvSize, 407);
    assert.equal(d.srcMta, 'unknown[127.0.0.1]');
    assert.equal(d.timeLogged, Date.UTC(2026, 10, 27, 20, 18, 42));
    assert.equal(d.timeQueued, Date.UTC(2026, 10, 27, 20, 18, 42));
    assert.equal(of('t', 'b@soft.test').length, 5);
    const [b] = of('b', 'h@hard.test');
    assert.equal(b!.dsnStatus, '5.3.0');
    assert.equal(b!.dsnDiag, 'smtp;500 5.3.0 Error: command failed');
  });

  it('turns a queue expiry into a message-expired bounce for each pending recipient', () => {
    const expired = rows.filter((r) => r.bounceCat === 'message-expired');
    assert.deepEqual(expired.map((r) => r.rcpt).sort(), ['b@soft.test', 'e@dead.test', 'q@dead.test']);
    const forced = expired.find((r) => r.rcpt === 'q@dead.test')!;
    assert.equal(forced.postfixQueueId, '425CF164126');
    assert.equal(forced.type, 'b');
  });

  it('records NOQUEUE and in-transaction RCPT rejects', () => {
    const rj = rows.filter((r) => r.type === 'rj');
    assert.deepEqual(
      rj.map((r) => [r.rcpt, r.postfixQueueId, r.dsnStatus]),
      [
        ['f@blocked.test', null, '5.7.1'],
        ['x3@blocked.test', '07A90164116', '5.7.1'],
      ],
    );
    assert.equal(rj[0]!.orig, 'sender@app.test');
  });

  it('marks a hand-off to the engine listener', () => {
    const [h] = of('d', 'd@engine.test');
    assert.equal(h!.queue, 'freight-engine');
    assert.equal(h!.path, 'handoff');
    assert.equal(of('d', 'a@ok.test')[0]!.queue, null);
  });

  it('follows postsuper -r to the new queue id', () => {
    const moved = of('t', 'p@dead.test');
    assert.deepEqual(
      moved.map((r) => r.postfixQueueId),
      ['249DF164122', '88A62164100'],
    );
    assert.equal(moved[1]!.messageId, '20261127201917.007719@vm');
    assert.deepEqual(ing.correlator.states.get('88A62164100')?.pending?.['p@dead.test']?.dsn, '4.4.1');
  });

  it('does not suppress on non-hard bounces', () => {
    assert.deepEqual(suppress, []);
  });

  it('gives each event a stable key, so a re-read adds nothing', () => {
    const again = ingest(fixture('postfix-3.7-capture.log')).rows;
    assert.deepEqual(
      again.map((r: AcctRecord) => r.dedupeKey),
      rows.map((r) => r.dedupeKey),
    );
    assert.equal(new Set(rows.map((r) => r.dedupeKey)).size, rows.length);
  });
});

describe('correlation', () => {
  it('starts fresh when a short queue id is reused after removed', () => {
    const text = [
      'Mar  5 06:00:00 h postfix/smtpd[1]: ABC123: client=one[192.0.2.1]',
      'Mar  5 06:00:00 h postfix/cleanup[2]: ABC123: message-id=<first@x>',
      'Mar  5 06:00:00 h postfix/qmgr[3]: ABC123: from=<a@x>, size=100, nrcpt=1 (queue active)',
      'Mar  5 06:00:01 h postfix/smtp[4]: ABC123: to=<r1@y>, relay=m[192.0.2.9]:25, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (250 ok)',
      'Mar  5 06:00:01 h postfix/qmgr[3]: ABC123: removed',
      'Mar  5 07:00:00 h postfix/smtpd[1]: ABC123: client=two[192.0.2.2]',
      'Mar  5 07:00:01 h postfix/smtp[4]: ABC123: to=<r2@y>, relay=m[192.0.2.9]:25, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (250 ok)',
    ].join('\n');
    const { rows, ing } = ingest(text, { ref: Date.UTC(2026, 5, 1) });
    assert.equal(rows[0]!.messageId, 'first@x');
    assert.equal(rows[1]!.messageId, null);
    assert.equal(rows[1]!.srcMta, 'two[192.0.2.2]');
    assert.equal(rows[1]!.orig, null);
    assert.equal(ing.correlator.states.size, 1);
  });

  it('suppresses hard bounces', () => {
    const text =
      'Mar  5 06:00:01 h postfix/smtp[4]: ABC124: to=<gone@y.example>, relay=m[192.0.2.9]:25, delay=1, delays=1/0/0/0, dsn=5.1.1, status=bounced (host m[192.0.2.9] said: 550 5.1.1 <gone@y.example>: user unknown (in reply to RCPT TO command))';
    const { suppress } = ingest(text, { ref: Date.UTC(2026, 5, 1) });
    assert.equal(suppress.length, 1);
    assert.equal(suppress[0]!.address, 'gone@y.example');
  });
});
