/**
 * PowerMTA's bounce categories: the vocabulary the classifier answers in, accounting rows record and
 * `<bounce-category-patterns>` rules name. Here, below every component, so that each can use it.
 */
export const BOUNCE_CATEGORIES = [
  'bad-configuration',
  'bad-connection',
  'bad-domain',
  'bad-mailbox',
  'content-related',
  'inactive-mailbox',
  'invalid-sender',
  'message-expired',
  'no-answer-from-host',
  'other',
  'policy-related',
  'protocol-errors',
  'quota-issues',
  'relaying-issues',
  'routing-errors',
  'spam-related',
  'virus-related',
] as const;

export type BounceCategory = (typeof BOUNCE_CATEGORIES)[number];
