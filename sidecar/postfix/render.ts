/**
 * `freight postfix render`: fills postfix/main.cf.tmpl and master.cf.tmpl from freight.conf into a private
 * instance directory. Placeholders are `{{name}}`; an unknown placeholder is a bug, so it throws.
 */
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { FreightError } from '../common/errors.js';
import { packageRoot } from '../common/paths.js';
import type { FreightConfig } from '../config/model.js';
import { type PostfixLayout, postfixLayout } from './layout.js';
import { renderDomainTransports } from './transports.js';

export interface RenderOptions {
  /** Instance directory; default `postfix-dir` from the config. */
  outDir?: string;
  /** main.cf parameters to set after rendering (tests and site-specific tweaks). */
  mainOverrides?: Record<string, string>;
  /** Extra lines for the static transport table, e.g. `example.com smtp:[127.0.0.5]:2525`. */
  extraTransports?: string[];
  /** Extra master.cf service definitions. */
  extraMaster?: string;
}

export interface RenderResult {
  layout: PostfixLayout;
  files: string[];
}

export function fillTemplate(template: string, values: Record<string, string>, name: string): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new FreightError('POSTFIX_TEMPLATE', `${name}: no value for {{${key}}}`);
    return v;
  });
}

/** Set or add `key = value` lines in a main.cf text. */
export function applyMainOverrides(text: string, overrides: Record<string, string>): string {
  let out = text;
  for (const [key, value] of Object.entries(overrides)) {
    const re = new RegExp(`^${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*=.*$`, 'm');
    out = re.test(out) ? out.replace(re, `${key} = ${value}`) : `${out.trimEnd()}\n${key} = ${value}\n`;
  }
  return out;
}

/** data_directory must belong to mail_owner; only root can arrange that (and only root runs Postfix). */
function ownDataDirByPostfix(dir: string): void {
  if (userInfo().uid !== 0) return;
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const entry = passwd.split('\n').find((l) => l.startsWith('postfix:'));
  if (!entry) return;
  const [, , uid, gid] = entry.split(':');
  chownSync(dir, Number(uid), Number(gid));
}

export function renderPostfix(config: FreightConfig, opts: RenderOptions = {}): RenderResult {
  const layout = postfixLayout(opts.outDir ?? config.global.postfixDir, config.global.maillog);
  for (const dir of [
    layout.configDir,
    layout.queueDir,
    layout.dataDir,
    layout.logDir,
    dirname(layout.maillog),
  ]) {
    mkdirSync(dir, { recursive: true });
  }
  ownDataDirByPostfix(layout.dataDir);
  const g = config.global;
  const transportFile = join(layout.configDir, 'transport');
  const domains = renderDomainTransports(config);
  const policy = `check_policy_service { inet:${g.policyListener.host}:${g.policyListener.port}, timeout=10s, default_action=DEFER_IF_PERMIT }`;
  const values: Record<string, string> = {
    queue_directory: layout.queueDir,
    data_directory: layout.dataDir,
    command_directory: g.postfixCommandDir,
    host_name: g.hostName,
    inet_interfaces: g.postfixListener.host,
    mynetworks: '127.0.0.0/8',
    smtpd_recipient_restrictions: `permit_mynetworks, reject_unauth_destination`,
    smtpd_end_of_data_restrictions: '',
    policy_default_action: 'DEFER_IF_PERMIT',
    smtpd_peername_lookup: 'yes',
    maillog_file: layout.maillog,
    maillog_file_prefixes: [...new Set(['/var', '/dev/stdout', layout.logDir, dirname(layout.maillog)])].join(
      ', ',
    ),
    // The ramp (if on) decides first per recipient; its NOTFOUND falls through to the static table.
    transport_maps: g.rampEnabled
      ? `socketmap:inet:${g.rampListener.host}:${g.rampListener.port}:transport, texthash:${transportFile}`
      : `texthash:${transportFile}`,
    engine_concurrency: '20',
    engine_recipient_limit: '100',
    smtp_dns_support_level: 'enabled',
    queue_run_delay: '300s',
    minimal_backoff_time: '300s',
    maximal_backoff_time: '4000s',
    maximal_queue_lifetime: '5d',
    bounce_queue_lifetime: '5d',
    domain_transport_settings: domains.mainCf,
    smtpd_listener: `${g.postfixListener.host}:${g.postfixListener.port}`,
    domain_transports: domains.masterCf,
  };
  // Suppression alone (a <policy> block) needs the policy service as much as rate limits do.
  if (config.extensions.some((e) => e.kind === 'policy-limit' || e.kind === 'policy')) {
    values.smtpd_recipient_restrictions = `${policy}, permit_mynetworks, reject_unauth_destination`;
    values.smtpd_end_of_data_restrictions = policy;
  }
  const mainTmpl = readFileSync(join(packageRoot, 'postfix/main.cf.tmpl'), 'utf8');
  const masterTmpl = readFileSync(join(packageRoot, 'postfix/master.cf.tmpl'), 'utf8');
  let main = fillTemplate(mainTmpl, values, 'main.cf.tmpl');
  if (opts.mainOverrides) main = applyMainOverrides(main, opts.mainOverrides);
  let master = fillTemplate(masterTmpl, values, 'master.cf.tmpl');
  if (opts.extraMaster) master = `${master.trimEnd()}\n${opts.extraMaster.trimEnd()}\n`;
  const transport = [
    '# Rendered by freight from freight.conf; edits are overwritten by `freight postfix render`.',
    ...domains.transportLines,
    ...(opts.extraTransports ?? []),
    '',
  ].join('\n');
  const files = [join(layout.configDir, 'main.cf'), join(layout.configDir, 'master.cf'), transportFile];
  writeFileSync(files[0]!, main);
  writeFileSync(files[1]!, master);
  writeFileSync(files[2]!, transport);
  return { layout, files };
}
