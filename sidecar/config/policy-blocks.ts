/**
 * The policy daemon's blocks of freight.conf, declared here so that config knows the whole language;
 * sidecar/policy/limits-config.ts turns them into limits.
 *
 *   <policy-limit tenant-rcpts>
 *     key        sasl_username              # parts joined by commas: sasl_username, sender, sender_domain,
 *                                           #   client_address[/N], recipient, recipient_domain, policy_context
 *     count      recipients                 # recipients | messages | bytes
 *     count-at   rcpt                       # rcpt | data | end-of-message (bytes: end-of-message only)
 *     rate       100/m                      # repeatable: every window must have room
 *     rate       5000/d
 *     action     DEFER_IF_PERMIT            # or DEFER, REJECT, DEFER_IF_REJECT, 4NN, 5NN
 *     text       "4.7.1 {limit}: {key} over {rate}"
 *     store-failure open                    # counters store unavailable: open = decide from memory, closed = defer
 *     <policy-override big-tenant>          # the key's value (parts joined by commas)
 *       rate 1000/m
 *     </policy-override>
 *   </policy-limit>
 */
import { type BlockSpec, d } from './schema.js';

const rate = d('rate', 'rate', 'a window: count/period, e.g. 100/m; repeat for several windows', {
  repeatable: true,
});
const action = d('action', 'string', 'reply action when over the limit (default DEFER_IF_PERMIT)');
const text = d('text', 'string', 'reply text; {limit}, {key} and {rate} are replaced');

export const POLICY_OVERRIDE = { rate, action, text };

export const POLICY_LIMIT = {
  key: d('key', 'list', 'what is counted separately: attribute names joined by commas'),
  count: d('count', 'string', 'recipients | messages | bytes (default recipients)'),
  countAt: d('count-at', 'string', 'rcpt | data | end-of-message (default rcpt; bytes: end-of-message)'),
  rate,
  action,
  text,
  storeFailure: d(
    'store-failure',
    'string',
    'open | closed: what to do while the counter store is unavailable',
  ),
  ipv6Prefix: d(
    'ipv6-prefix',
    'int',
    'prefix length grouping IPv6 client addresses for client_address/N keys',
    {
      min: 1,
    },
  ),
};

export const POLICY = {
  suppression: d('suppression', 'bool', 'refuse recipients on the suppression list at RCPT (default yes)'),
  suppressionAction: d(
    'suppression-action',
    'string',
    'reply action for a suppressed recipient (default REJECT)',
  ),
  suppressionText: d(
    'suppression-text',
    'string',
    'reply text for a suppressed recipient; {recipient} is replaced',
  ),
  suppressionStoreFailure: d(
    'suppression-store-failure',
    'string',
    'open | closed while the suppression list cannot be read',
  ),
  snapshotInterval: d('snapshot-interval', 'duration', 'how often counters are saved (default 1s)'),
};

export const POLICY_BLOCKS: BlockSpec[] = [
  {
    kind: 'policy-limit',
    named: 'required',
    children: ['policy-override'],
    description: 'a rate limit applied by `freight policy` at SMTP time',
    directives: Object.values(POLICY_LIMIT),
  },
  {
    kind: 'policy-override',
    named: 'required',
    nestedOnly: true,
    description: 'different windows (or action/text) for one key value of the enclosing <policy-limit>',
    directives: Object.values(POLICY_OVERRIDE),
  },
  {
    kind: 'policy',
    named: 'none',
    description: 'settings of the policy daemon (suppression check, persistence)',
    directives: Object.values(POLICY),
  },
];
