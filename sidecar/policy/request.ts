/**
 * The Postfix SMTPD access policy request (SMTPD_POLICY_README): every attribute smtpd sends, by the
 * Postfix version that introduced it. Unknown attributes are ignored (a newer Postfix may add some).
 */

export const POLICY_ATTRIBUTES = [
  // Postfix 2.1
  'request',
  'protocol_state',
  'protocol_name',
  'helo_name',
  'queue_id',
  'sender',
  'recipient',
  'recipient_count',
  'client_address',
  'client_name',
  'reverse_client_name',
  'instance',
  // 2.2
  'sasl_method',
  'sasl_username',
  'sasl_sender',
  'size',
  'ccert_subject',
  'ccert_issuer',
  'ccert_fingerprint',
  // 2.3
  'encryption_protocol',
  'encryption_cipher',
  'encryption_keysize',
  'etrn_domain',
  // 2.5
  'stress',
  // 2.9
  'ccert_pubkey_fingerprint',
  // 3.0
  'client_port',
  // 3.1
  'policy_context',
  // 3.2
  'server_address',
  'server_port',
  // 3.8
  'compatibility_level',
  'mail_version',
] as const;

export type PolicyAttribute = (typeof POLICY_ATTRIBUTES)[number];

/** One request; an attribute Postfix did not send is ''. */
export type PolicyRequest = Record<PolicyAttribute, string>;

/** Attribute names by length, for matching a name in place (attributeAt). */
const BY_LENGTH: PolicyAttribute[][] = [];
for (const name of POLICY_ATTRIBUTES) (BY_LENGTH[name.length] ??= []).push(name);

/**
 * The attribute whose name is `text[start, end)`, or null if it is not one. Matching in place rather than
 * slicing the name out saves, per request, some 30 short strings and as many string-table lookups
 * (a property key made at run time is internalized on first use as a key).
 */
export function attributeAt(text: string, start: number, end: number): PolicyAttribute | null {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return null;
  const first = text.charCodeAt(start);
  for (let i = 0; i < candidates.length; i++) {
    const name = candidates[i]!;
    if (name.charCodeAt(0) === first && text.startsWith(name, start)) return name;
  }
  return null;
}

/** A request with every attribute empty; the object always has the same shape (fast property access). */
export function emptyRequest(): PolicyRequest {
  return {
    request: '',
    protocol_state: '',
    protocol_name: '',
    helo_name: '',
    queue_id: '',
    sender: '',
    recipient: '',
    recipient_count: '',
    client_address: '',
    client_name: '',
    reverse_client_name: '',
    instance: '',
    sasl_method: '',
    sasl_username: '',
    sasl_sender: '',
    size: '',
    ccert_subject: '',
    ccert_issuer: '',
    ccert_fingerprint: '',
    encryption_protocol: '',
    encryption_cipher: '',
    encryption_keysize: '',
    etrn_domain: '',
    stress: '',
    ccert_pubkey_fingerprint: '',
    client_port: '',
    policy_context: '',
    server_address: '',
    server_port: '',
    compatibility_level: '',
    mail_version: '',
  };
}

/** SMTP protocol stages at which smtpd asks (`protocol_state`). */
export type ProtocolState =
  | 'CONNECT'
  | 'EHLO'
  | 'HELO'
  | 'MAIL'
  | 'RCPT'
  | 'DATA'
  | 'END-OF-MESSAGE'
  | 'VRFY'
  | 'ETRN';

/** Lower-cased domain of an address ('' for the null sender or a bare local part). */
export function addressDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}
