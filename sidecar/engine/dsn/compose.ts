/**
 * RFC 3464 delivery status notifications for final failures: a `multipart/report` with a human part,
 * the `message/delivery-status` part (one per-recipient block each) and the original message
 * (`message/rfc822`, or `text/rfc822-headers` for RET=HDRS or when the original is too large). When the
 * original cannot be read at all the third part is left out (RFC 6522 makes it optional) and the human
 * part says so, so the sender never gets an empty message presented as theirs.
 */
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from '../intake/index.js';
import type { SpooledMessage } from '../types.js';

export interface DsnRecipient {
  rcpt: string;
  /** ORCPT as given at intake (`rfc822;addr`), or null. */
  orcpt: string | null;
  /** Enhanced status, e.g. 5.1.1. */
  status: string;
  /** `smtp;550 5.1.1 …` or a local reason. */
  diag: string;
  /** Remote MTA host that answered, or null for a local decision (expiry). */
  mta: string | null;
}

export interface DsnInput {
  msg: SpooledMessage;
  rcpts: DsnRecipient[];
  /** This host (Reporting-MTA, From domain). */
  hostName: string;
  /** `postmaster` directive: an address, or a local part at host-name. */
  postmaster: string;
  /** Original message: headers only, or the whole message when `full`; null when it cannot be read. */
  original: Buffer | null;
  full: boolean;
  now: Date;
}

/** Whether the sender asked for (or by default gets) a failure DSN for this recipient. */
export function wantsFailureDsn(sender: string, notify: string | null): boolean {
  if (sender === '') return false;
  if (notify === null) return true;
  const values = notify.toUpperCase().split(',');
  return values.includes('FAILURE') && !values.includes('NEVER');
}

/** Status from a reply like `smtp;550 5.1.1 no such user`; class 5 default for a final failure. */
export function statusFromDiag(diag: string | null): string {
  const m = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(diag ?? '');
  return m ? `5.${m[2]}.${m[3]}` : '5.0.0';
}

/** Header block of a message (up to and including the blank line). */
export function headerBlock(raw: Buffer): Buffer {
  const crlf = raw.indexOf('\r\n\r\n');
  return crlf >= 0 ? raw.subarray(0, crlf + 4) : raw;
}

function fromAddress(postmaster: string, hostName: string): string {
  return postmaster.includes('@') ? postmaster : `${postmaster}@${hostName}`;
}

/** Keep header fields to one line of printable ASCII. */
function field(v: string): string {
  return v.replace(/[\r\n]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}

function diagnosticCode(diag: string): string {
  const m = /^(smtp|x-[a-z-]+)\s*;\s*(.*)$/i.exec(diag);
  return m ? `${m[1]!.toLowerCase()}; ${field(m[2]!)}` : `x-freight; ${field(diag)}`;
}

/** The human-readable first part: what happened, one line per recipient. */
function notification(input: DsnInput): string[] {
  const { msg, rcpts, hostName } = input;
  return [
    `This is the mail system at host ${hostName}.`,
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients. It is attached below.',
    '',
    ...rcpts.map((r) => `<${field(r.rcpt)}>: ${field(r.diag)}`),
    '',
    ...(input.original
      ? []
      : [
          'The original message could not be read from the spool of this system,',
          'so it is not attached to this report.',
          ...(msg.messageId ? [`Its Message-ID was ${field(msg.messageId)}.`] : []),
          '',
        ]),
  ];
}

/** The message/delivery-status part: per-message fields, then one block per recipient. */
function deliveryStatus(input: DsnInput): string[] {
  const { msg, rcpts, hostName, now } = input;
  const perMessage = [
    `Reporting-MTA: dns; ${hostName}`,
    `X-Freight-Queue-ID: ${msg.id}`,
    ...(msg.postfixQueueId ? [`X-Postfix-Queue-ID: ${msg.postfixQueueId}`] : []),
    ...(msg.envId ? [`Original-Envelope-Id: ${field(msg.envId)}`] : []),
    `Arrival-Date: ${rfc5322Date(new Date(msg.receivedAt))}`,
  ];
  const perRcpt = rcpts.map((r) =>
    [
      `Final-Recipient: rfc822; ${field(r.rcpt)}`,
      ...(r.orcpt ? [`Original-Recipient: ${field(r.orcpt.replace(/^([^;]+);\s*/, '$1; '))}`] : []),
      'Action: failed',
      `Status: ${r.status}`,
      ...(r.mta ? [`Remote-MTA: dns; ${field(r.mta)}`] : []),
      `Diagnostic-Code: ${diagnosticCode(r.diag)}`,
      `Last-Attempt-Date: ${rfc5322Date(now)}`,
    ].join('\r\n'),
  );
  return [perMessage.join('\r\n'), '', perRcpt.join('\r\n\r\n')];
}

/** The DSN message (CRLF), addressed to the original envelope sender. */
export function composeDsn(input: DsnInput): Buffer {
  const { msg, hostName, now } = input;
  const boundary = `freight-dsn-${randomBytes(8).toString('hex')}`;
  const from = fromAddress(input.postmaster, hostName);
  const head = [
    `From: Mail Delivery System <${from}>`,
    `To: <${field(msg.sender)}>`,
    'Subject: Undelivered Mail Returned to Sender',
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${msg.id}.${now.getTime().toString(36)}.dsn@${hostName}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    ...notification(input),
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    ...deliveryStatus(input),
    '',
  ].join('\r\n');
  if (!input.original) return Buffer.from(`${head}\r\n--${boundary}--\r\n`, 'latin1');
  const third = [
    `--${boundary}`,
    `Content-Description: ${input.full ? 'Undelivered Message' : 'Undelivered Message Headers'}`,
    `Content-Type: ${input.full ? 'message/rfc822' : 'text/rfc822-headers'}`,
    '',
    '',
  ].join('\r\n');
  const original = input.original.toString('latin1');
  const tail = `${original.endsWith('\r\n') ? '' : '\r\n'}\r\n--${boundary}--\r\n`;
  return Buffer.concat([
    Buffer.from(`${head}\r\n${third}`, 'latin1'),
    input.original,
    Buffer.from(tail, 'latin1'),
  ]);
}
