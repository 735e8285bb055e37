// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Who may import whom (DESIGN.md): the folder layout is the architecture, and lint keeps it so.
const ours = (...dirs) => dirs.flatMap((d) => [`**/${d}/*`, `**/${d}/**`]);
const layer = (files, forbidden, why) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns: [{ group: forbidden, message: why }] }] },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-floating-promises': 'error',
      // `return respond(…)` in a void function (request routing) reads well and hides nothing.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true }],
      // client-node's models are plain-data classes; API objects are built as literals everywhere.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['test/**/*.ts'],
    rules: {
      // chai's `expect(x).to.be.true` is an expression statement by design.
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  layer(['src/api/**'], [...ours('runtime', 'controllers', 'providers', 'gateway', 'agent', 'cli', 'controlplane')], 'src/api imports nothing of ours.'),
  layer(['src/runtime/**'], [...ours('controllers', 'providers', 'gateway', 'agent', 'cli', 'controlplane')], 'src/runtime knows no Gitspace logic.'),
  layer(['src/providers/**'], [...ours('controllers', 'gateway', 'agent', 'cli', 'controlplane')], 'Providers never import controllers, the gateway or the CLI.'),
  layer(['src/controllers/**'], [...ours('gateway', 'agent', 'cli', 'controlplane'), '**/providers/gcp/**', '**/providers/aws/**', '**/providers/local/**'], 'Controllers use the provider interface, not a concrete provider; the delegate speaks to a control plane only over the wire.'),
  layer(['src/gateway/**'], [...ours('providers', 'controllers', 'agent', 'cli', 'controlplane')], 'The gateway uses api and runtime only.'),
  layer(['src/controlplane/**'], [...ours('api', 'runtime', 'providers', 'controllers', 'gateway', 'agent', 'cli')], 'The control plane runs outside the cluster: it shares the wire protocol, not code.'),
  layer(['src/agent/**'], [...ours('runtime', 'providers', 'controllers', 'gateway', 'cli'), '@kubernetes/*', '@google-cloud/*', '@aws-sdk/*'], 'The agent runs on the VM: no Kubernetes client, no cloud SDK.'),
);
