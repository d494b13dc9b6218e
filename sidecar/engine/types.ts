import type { BounceCategory } from '../acct/record.js';

/**
 * The contract between the engine's intake/spool half and its delivery half (engine → queue → session).
 * Intake makes a message durable and hands it to the scheduler; the scheduler reports every recipient
 * outcome back to the spool so a restart resumes exactly where delivery stood (at least once).
 */

export type RecipientState = 'queued' | 'delivered' | 'bounced';

export interface QueuedRecipient {
  rcpt: string;
  /** Original recipient (DSN ORCPT or Postfix's orig_to), if known. */
  orcpt: string | null;
  /** DSN NOTIFY as given at intake (e.g. 'FAILURE,DELAY'), or null for the default. */
  notify: string | null;
  state: RecipientState;
  attempts: number;
  /** Epoch ms; 0 = as soon as possible. */
  nextAttemptAt: number;
  /** Last diagnostic (reply text or local reason), for DSNs and `freight show`. */
  lastDiag: string | null;
}

export interface SpooledMessage {
  /** Engine message id (also the spool file name). */
  id: string;
  /** Envelope sender; '' is the null sender (no DSN is ever sent for it). */
  sender: string;
  envId: string | null;
  ret: 'FULL' | 'HDRS' | null;
  receivedAt: number;
  /** Bytes of the spooled message (headers + body, CRLF). */
  size: number;
  jobId: string | null;
  /** Virtual MTA or pool requested by X-Virtual-MTA (only if the source may), else null. */
  vmtaRequest: string | null;
  /** Postfix queue id of the hand-off, if the message came from Postfix. */
  postfixQueueId: string | null;
  /** Message-ID header value. */
  messageId: string | null;
  /** Address of the client that injected it. */
  sourceIp: string;
  recipients: QueuedRecipient[];
}

/** Outcome of one attempt for one recipient, as the delivery half reports it to the spool. */
export interface RecipientUpdate {
  messageId: string;
  rcptIndex: number;
  state: RecipientState;
  attempts: number;
  nextAttemptAt: number;
  lastDiag: string | null;
  /** The accounting row's facts, journaled with the outcome so a crash cannot lose the row. */
  acct?: AcctEvent;
}

/** What the delivery half needs from the spool. */
export interface SpoolPort {
  /** Record recipient outcomes durably (journal; may be group-committed). */
  update(updates: RecipientUpdate[]): void;
  /** The spooled message bytes (X-Virtual-MTA / job header already removed), whole. */
  readBody(msg: SpooledMessage): Promise<Buffer>;
  /** The same as a stream, for messages too large to hold per attempt. */
  openBody(msg: SpooledMessage): NodeJS.ReadableStream;
  /** All recipients final: remove the message's files. */
  remove(msg: SpooledMessage): void;
}

/** What intake needs from the delivery half. */
export interface SchedulerPort {
  /** A message just became durable (or was recovered at start-up): schedule its queued recipients. */
  submit(msg: SpooledMessage): void;
  /** Recipients currently held in memory (for back-pressure: intake answers 4xx above a limit). */
  queuedRecipients(): number;
}

/** Where an attempt went: queue, vmta and (if a connection was made) the remote. */
export interface AttemptPlace {
  /** Queue key `domain/vmta`; null when the recipient never reached a queue (suppressed). */
  queue: string | null;
  vmta: string | null;
  vmtaPool: string | null;
  sourceIp: string | null;
  destinationIp: string | null;
  mta: string | null;
  esmtp: string | null;
}

/** The accounting half of a recipient outcome, journaled with it. */
export interface AcctEvent {
  type: 'd' | 't' | 'b';
  at: number;
  /** Enhanced status, e.g. 5.1.1. */
  status: string;
  bounceCat: BounceCategory | null;
  place: AttemptPlace;
}
