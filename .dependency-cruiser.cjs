/**
 * Import rules for Freight, checked by `npm run deps:check` and by `npm test`.
 *
 * The top-level folders under sidecar/ form layers; a module imports only from its own layer or the ones
 * below it, so a component can be read (and tested) knowing nothing about the components built on it.
 * Siblings in one layer may import each other as long as no cycle forms. Type-only imports count: an
 * upward `import type` couples a component to what is built on it just as a value import does.
 */

/** Lowest first. */
const LAYERS = [
  ['common'],
  ['config'],
  ['acct', 'classify', 'suppress', 'dkim', 'dns', 'postfix'],
  ['engine', 'policy', 'tailer', 'ramp', 'deliverability'],
  ['api', 'stack'],
  ['cli'],
];

/** The folder that test/ and bench/ share: worlds, processes and load generators both drive. */
const HARNESS = 'harness';

const folders = (names) => `^sidecar/(${names.join('|')})/`;

/** One rule per layer: nothing in it imports a folder of a higher layer. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join('-')}`,
  comment: `${layer.join(', ')} import only from their own layer or below (${LAYERS.slice(0, i)
    .flat()
    .join(', ')})`,
  severity: 'error',
  from: { path: folders(layer) },
  to: { path: folders(LAYERS.slice(i + 1).flat()) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes its modules one unit that cannot be loaded, read or tested apart',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'api-engine-control-only',
      comment:
        'The API talks to the engine over its control socket: it imports the protocol and the client, never engine internals',
      severity: 'error',
      from: { path: '^sidecar/api/' },
      to: { path: '^sidecar/engine/', pathNot: '^sidecar/engine/control/(protocol|client)\\.ts$' },
    },
    {
      name: 'engine-entry-modules',
      comment:
        'An engine sub-folder is used through its entry module (index.ts); its other files are its own',
      severity: 'error',
      from: { path: '^sidecar/engine/([^/]+)/' },
      to: {
        path: '^sidecar/engine/[^/]+/',
        pathNot: ['^sidecar/engine/$1/', '^sidecar/engine/[^/]+/index\\.ts$'],
      },
    },
    {
      name: 'engine-root-entry-modules',
      comment: 'The daemon and the CLI use the engine sub-folders through their entry modules (index.ts)',
      severity: 'error',
      from: { path: '^sidecar/engine/[^/]+\\.ts$' },
      to: { path: '^sidecar/engine/[^/]+/', pathNot: '^sidecar/engine/[^/]+/index\\.ts$' },
    },
    {
      name: 'sidecar-not-tests',
      comment: 'The product never imports its tests, benchmarks or their harness',
      severity: 'error',
      from: { path: '^sidecar/' },
      to: { path: `^(test|bench|${HARNESS})/` },
    },
    {
      name: 'tests-not-benches',
      comment: `Tests and benchmarks share ${HARNESS}/; neither imports the other`,
      severity: 'error',
      from: { path: '^test/' },
      to: { path: '^bench/' },
    },
    {
      name: 'benches-not-tests',
      comment: `Tests and benchmarks share ${HARNESS}/; neither imports the other`,
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'harness-not-tests-or-benches',
      comment: 'The shared harness stands below the tests and benchmarks that use it',
      severity: 'error',
      from: { path: `^${HARNESS}/` },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing fails at run time',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
