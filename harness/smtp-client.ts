/**
 * An independent SMTP client for tests (nodemailer's transport): submit a message to a listener, or
 * hold a transport to one for several sends.
 */
import nodemailer from 'nodemailer';

export interface SubmitOptions {
  host: string;
  port: number;
  from: string;
  to: string | string[];
  subject?: string;
  text?: string;
  headers?: Record<string, string>;
  messageId?: string;
}

export interface SubmitResult {
  accepted: string[];
  rejected: string[];
  response: string;
  messageId: string;
}

export async function submit(opts: SubmitOptions): Promise<SubmitResult> {
  const transport = nodemailer.createTransport({
    host: opts.host,
    port: opts.port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  try {
    const info = await transport.sendMail({
      from: opts.from,
      to: opts.to,
      subject: opts.subject ?? 'test',
      text: opts.text ?? 'hello from the test world\n',
      headers: opts.headers,
      ...(opts.messageId ? { messageId: opts.messageId } : {}),
    });
    return {
      accepted: info.accepted.map(String),
      rejected: info.rejected.map(String),
      response: info.response,
      messageId: info.messageId,
    };
  } finally {
    transport.close();
  }
}

/** A nodemailer transport to `to` (a sink or any listener) that sends as `client.freight.test`. */
export function sinkTransport(to: { host: string; port: number }, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: to.host,
    port: to.port,
    secure: false,
    ignoreTLS: true,
    name: 'client.freight.test',
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    ...extra,
  });
}

/** A small plain-text message from sender@freight.test (50 body lines). */
export const testMessage = (to: string | string[], extra: Record<string, unknown> = {}) => ({
  from: 'sender@freight.test',
  to,
  subject: 'hello',
  text: 'body line\r\n'.repeat(50),
  ...extra,
});
