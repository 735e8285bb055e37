// The startup payload a VM boots with (GCE `startup-script` metadata, EC2 `UserData`, or the
// local provider's process): a shell script that writes the agent's config and execs the agent.
// The local provider runs exactly this script, so the local path tests what cloud VMs run.
import { CODE_SERVER_VERSION, isPoolBoot, type AgentBoot } from '../api/agent.ts';

export interface StartupOptions {
  /** Directory for the agent's files (cloud: /var/lib/gitspaces; local: the instance directory). */
  root?: string;
  /** Command that runs the agent; cloud images have `gitspaces` on PATH. */
  agentCommand?: string;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A Gitspace's VM writes agent.json and runs it. A warm-pool VM writes pool.json and waits to be
 * claimed; the claim leaves agent.json behind, so after a stop/start the same script resumes the
 * VM as the Gitspace that claimed it.
 */
export function startupScript(boot: AgentBoot, o: StartupOptions = {}): string {
  const payload = Buffer.from(JSON.stringify(boot)).toString('base64');
  const file = isPoolBoot(boot) ? 'pool.json' : 'agent.json';
  const root = o.root ? shellQuote(o.root) : '"${GITSPACES_ROOT:-/var/lib/gitspaces}"';
  const agent = o.agentCommand ?? '${GITSPACES_AGENT:-gitspaces}';
  return [
    '#!/usr/bin/env bash',
    '# Gitspaces VM startup: write the agent config (private to its user) and run the agent.',
    'set -euo pipefail',
    `root=${root}`,
    'umask 077',
    'mkdir -p "$root"',
    `base64 -d > "$root/${file}.tmp" <<'GITSPACES_PAYLOAD'`,
    payload.replace(/(.{76})/g, '$1\n').trimEnd(),
    'GITSPACES_PAYLOAD',
    `mv "$root/${file}.tmp" "$root/${file}"`,
    // The browser IDE: the pinned code-server unless the image has one (pre-bake it: README).
    ...(!isPoolBoot(boot) && boot.ide.type === 'vscode-web'
      ? [
          'if [ -z "${GITSPACES_CODE_SERVER:-}" ] && ! command -v code-server >/dev/null 2>&1; then',
          `  npm install -g --no-audit --no-fund code-server@${CODE_SERVER_VERSION} >&2 || echo "gitspaces: could not install code-server" >&2`,
          'fi',
        ]
      : []),
    'config="$root/agent.json"',
    '[ -f "$config" ] || config="$root/pool.json"',
    'echo $$ > "$root/agent.pid"',
    `exec ${agent} agent --config "$config"`,
    '',
  ].join('\n');
}
