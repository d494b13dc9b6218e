/**
 * RFC 2920 command pipelining for nodemailer's SMTPConnection. nodemailer pipelines only the RCPT
 * commands: it sends MAIL FROM, waits, sends the RCPTs, waits, sends DATA, waits — three round trips
 * before the first body byte. Against a remote 50 ms away that is 150 ms per message per connection;
 * Postfix and PowerMTA send MAIL, every RCPT and DATA in one batch when the server offers PIPELINING.
 *
 * This subclass does the same: it lets nodemailer validate the envelope and build MAIL FROM (SIZE, BODY,
 * DSN parameters and SMTPUTF8 stay nodemailer's), then queues the RCPTs and DATA behind it at once and
 * reads the replies in order. The envelope result is reported exactly as nodemailer reports it
 * (`accepted`, `rejected`, `rejectedErrors` on the envelope; EENVELOPE errors), so the message phase and
 * everything above it are unchanged. Without PIPELINING nodemailer's own sequence runs.
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';

type Callback = (err: Error | null, info?: EnvelopeInfo) => void;

interface EnvelopeInfo {
  accepted: string[];
  rejected: string[];
  rejectedErrors?: Error[];
}

/** The parts of nodemailer's connection state this extension reads and writes (not in its typings). */
interface Internals {
  _supportedExtensions: string[];
  _responseActions: Array<(str: string) => void>;
  /** Reply lines read from the socket, handled one per tick. */
  _responseQueue: string[];
  _destroyed: boolean;
  _processResponse(): void;
  _onClose(): void;
  _envelope: {
    rcptQueue: string[];
    accepted: string[];
    rejected: string[];
    rejectedErrors: Array<Error & { recipient?: string }>;
    to: string[];
  };
  _sendCommand(str: string): void;
  _getDsnRcptToArgs(): string;
  _formatError(message: string, type: string, response: string | false, command: string): Error;
  _setEnvelope(envelope: unknown, callback: Callback): void;
}

const base = SMTPConnection.prototype as unknown as Internals;

export class PipeliningSMTPConnection extends SMTPConnection {
  /** Overrides nodemailer's private envelope step (same signature). */
  _setEnvelope(envelope: unknown, callback: Callback): void {
    const self = this as unknown as Internals;
    if (!self._supportedExtensions.includes('PIPELINING')) {
      base._setEnvelope.call(this, envelope, callback);
      return;
    }
    const queued = self._responseActions.length;
    base._setEnvelope.call(this, envelope, callback);
    // nodemailer queued its MAIL handler only if the envelope was valid and MAIL FROM went out.
    if (self._responseActions.length !== queued + 1) return;
    this.pipelineRest(self, queued, callback);
  }

  /**
   * Overrides nodemailer's socket-close handler. nodemailer handles one reply line per tick, so a remote
   * that answers a pipelined RCPT with 421 and closes at once has its close seen first and the 421 lost
   * to "connection closed". The replies already read are handled before the close is.
   */
  _onClose(): void {
    const self = this as unknown as Internals;
    while (self._responseQueue.length > 0 && !self._destroyed) self._processResponse();
    base._onClose.call(this);
  }

  private pipelineRest(self: Internals, mailAction: number, callback: Callback): void {
    const env = self._envelope;
    let mailError: Error | null = null;
    self._responseActions[mailAction] = (str) => {
      if (str.charAt(0) !== '2')
        mailError = self._formatError('Mail command failed', 'EENVELOPE', str, 'MAIL FROM');
    };
    const dsnArgs = self._getDsnRcptToArgs();
    const rcpts = env.rcptQueue.splice(0);
    for (const rcpt of rcpts) {
      self._responseActions.push((str) => {
        if (mailError) return;
        if (str.charAt(0) === '2') {
          env.accepted.push(rcpt);
          return;
        }
        const err = self._formatError('Recipient command failed', 'EENVELOPE', str, 'RCPT TO') as Error & {
          recipient?: string;
        };
        err.recipient = rcpt;
        env.rejected.push(rcpt);
        env.rejectedErrors.push(err);
      });
      self._sendCommand(`RCPT TO:<${rcpt}>${dsnArgs}`);
    }
    self._responseActions.push((str) => this.afterData(self, str, mailError, callback));
    self._sendCommand('DATA');
  }

  private afterData(self: Internals, str: string, mailError: Error | null, callback: Callback): void {
    const env = self._envelope;
    const dataOpen = /^[23]/.test(str);
    const failure =
      mailError ??
      (env.accepted.length === 0
        ? Object.assign(
            self._formatError("Can't send mail - all recipients were rejected", 'EENVELOPE', str, 'RCPT TO'),
            { rejected: env.rejected, rejectedErrors: env.rejectedErrors },
          )
        : dataOpen
          ? null
          : self._formatError('Data command failed', 'EENVELOPE', str, 'DATA'));
    if (!failure) {
      callback(null, {
        accepted: env.accepted,
        rejected: env.rejected,
        ...(env.rejectedErrors.length > 0 ? { rejectedErrors: env.rejectedErrors } : {}),
      });
      return;
    }
    if (dataOpen) {
      // A server that opened DATA although nothing was accepted gets an empty message, never ours.
      self._responseActions.push(() => callback(failure));
      self._sendCommand('.');
      return;
    }
    callback(failure);
  }
}
