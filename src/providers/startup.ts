// The startup payload a VM boots with (GCE `startup-script` metadata, EC2 `UserData`, or the
// local provider's process): a shell script that holds only non-secret boot facts. It
//  1. checks the image has what it needs (bash, curl, tar, sha256sum…), saying which is missing;
//  2. writes the boot facts (with the SHA-256 of the one-time enrolment token, never the token);
//  3. installs the agent bundle for this architecture from the gateway (or a mirror), checking the
//     sha256 written here — or finds that version already in the image (baked);
//  4. installs a systemd unit so the agent runs on every boot (EC2 runs UserData only on the
//     first), or, without systemd, execs the agent directly.
// A failure prints one `gitspaces-boot: failed reason=<Reason>: <message>` line on the console,
// which the operator reads back (serial port output / console output) into the Gitspace's status.
// The local provider runs exactly this script, with GITSPACES_AGENT naming its agent command.
import { BOOT_FAILURE_PREFIX, type BootFacts } from '../api/agent.ts';

export interface StartupOptions {
  /** Directory for the agent's files (cloud: /var/lib/gitspaces; local: the instance directory). */
  root?: string;
  /** Command that runs the agent instead of the bundle (local provider, tests): `<cmd> agent --root DIR`. */
  agentCommand?: string;
}

export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Where a bundle is unpacked on the VM, and the unit that runs it. */
export const AGENT_OPT_DIR = '/opt/gitspaces';
export const AGENT_UNIT = 'gitspaces-agent.service';

function bundleLines(facts: BootFacts): string[] {
  const b = facts.bundle;
  if (!b) return ['agent=""'];
  const base = b.baseURL.replace(/\/+$/, '');
  const cases = Object.entries(b.sha256).map(([arch, sha]) => `  ${arch === 'x64' ? 'x86_64|amd64' : 'aarch64|arm64'}) arch=${arch}; sha=${shellQuote(sha ?? '')} ;;`);
  return [
    `version=${shellQuote(b.version)}`,
    'case "$(uname -m)" in',
    ...cases,
    '  *) fail AgentInstallFailed "no agent bundle for this architecture ($(uname -m))" ;;',
    'esac',
    'file="gitspaces-agent-$version-linux-$arch.tar.gz"',
    `url=${shellQuote(base)}"/$version/$file"`,
    `dir=${AGENT_OPT_DIR}/"$version"`,
    // A baked image (or an earlier boot) already has this exact bundle: nothing to download.
    'if [ "$(cat "$dir/.sha256" 2>/dev/null)" != "$sha" ] || [ ! -x "$dir/bin/gitspaces-agent" ]; then',
    '  say "downloading the agent bundle from $url"',
    `  tmp="$(mktemp -d ${AGENT_OPT_DIR}/.download.XXXXXX)"`,
    '  curl -fsSL --retry 5 --retry-delay 2 --retry-all-errors --connect-timeout 10 --max-time 600 -o "$tmp/$file" "$url" \\',
    '    || fail AgentInstallFailed "could not download the agent bundle from $url (expected sha256 $sha)"',
    '  got="$(sha256sum "$tmp/$file" | cut -d" " -f1)"',
    '  [ "$got" = "$sha" ] || fail AgentInstallFailed "the agent bundle from $url has sha256 $got, expected $sha"',
    '  tar -xzf "$tmp/$file" -C "$tmp" || fail AgentInstallFailed "could not unpack the agent bundle from $url"',
    '  rm -rf "$dir" && mv "$tmp/gitspaces-agent-$version" "$dir" && echo "$sha" > "$dir/.sha256"',
    '  rm -rf "$tmp"',
    'fi',
    `ln -sfn "$dir" ${AGENT_OPT_DIR}/current`,
    'agent="$dir/bin/gitspaces-agent"',
  ];
}

/**
 * The script. Boot facts are written on every boot (they hold nothing that changes once the VM is
 * claimed: the agent ignores the enrolment hash once it has its configuration).
 */
export function startupScript(facts: BootFacts, o: StartupOptions = {}): string {
  const payload = Buffer.from(JSON.stringify(facts)).toString('base64');
  const root = o.root ? shellQuote(o.root) : '"${GITSPACES_ROOT:-/var/lib/gitspaces}"';
  const command = o.agentCommand ?? '${GITSPACES_AGENT:-}';
  return [
    '#!/usr/bin/env bash',
    '# Gitspaces VM startup: boot facts (no secrets), the agent bundle, and a unit that runs it every boot.',
    'set -uo pipefail',
    `say() { echo "gitspaces-boot: $*"; }`,
    `fail() { echo "${BOOT_FAILURE_PREFIX} reason=$1: $2"; exit 1; }`,
    `root=${root}`,
    `agent_cmd=${command.startsWith('$') ? `"${command}"` : shellQuote(command)}`,
    'need="base64 mkdir mv cat"',
    '[ -n "$agent_cmd" ] || need="$need curl tar gzip sha256sum mktemp uname cut"',
    'missing=""',
    'for t in $need; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done',
    '[ -z "$missing" ] || fail ImageUnsupported "the image lacks:$missing"',
    'umask 077',
    'mkdir -p "$root" || fail AgentInstallFailed "cannot create $root"',
    'chmod 700 "$root"',
    `base64 -d > "$root/boot.json.tmp" <<'GITSPACES_BOOT'`,
    payload.replace(/(.{76})/g, '$1\n').trimEnd(),
    'GITSPACES_BOOT',
    'mv "$root/boot.json.tmp" "$root/boot.json"',
    'if [ -n "$agent_cmd" ]; then',
    // The agent's files set their own modes; what the developer makes (the checkout) gets the usual 022.
    '  umask 022',
    '  echo $$ > "$root/agent.pid"',
    '  exec $agent_cmd agent --root "$root"',
    'fi',
    'umask 022',
    `mkdir -p ${AGENT_OPT_DIR}`,
    ...bundleLines(facts),
    '[ -n "$agent" ] && [ -x "$agent" ] || agent="$(command -v gitspaces-agent || true)"',
    '[ -n "$agent" ] || fail AgentInstallFailed "no agent bundle was named and the image has no gitspaces-agent"',
    'if [ -d /run/systemd/system ]; then',
    `  unit=/etc/systemd/system/${AGENT_UNIT}`,
    '  want="[Unit]',
    'Description=Gitspaces agent',
    'Wants=network-online.target',
    'After=network-online.target',
    '[Service]',
    'ExecStart=$agent --root $root',
    'Restart=always',
    'RestartSec=2',
    'KillMode=mixed',
    '[Install]',
    'WantedBy=multi-user.target"',
    // A changed unit (a new agent version) restarts the agent; an unchanged one is left running
    // (GCE runs this script on every boot, after systemd has already started the unit).
    '  if [ "$(cat "$unit" 2>/dev/null)" != "$want" ]; then',
    '    printf "%s\\n" "$want" > "$unit" && systemctl daemon-reload && systemctl enable --quiet ' + AGENT_UNIT + ' \\',
    '      && systemctl restart --no-block ' + AGENT_UNIT + ' || fail AgentInstallFailed "systemd could not start ' + AGENT_UNIT + '"',
    '  else',
    '    systemctl start --no-block ' + AGENT_UNIT + ' || fail AgentInstallFailed "systemd could not start ' + AGENT_UNIT + '"',
    '  fi',
    '  say "agent unit ' + AGENT_UNIT + ' runs $agent"',
    '  exit 0',
    'fi',
    'say "no systemd: running the agent directly ($agent)"',
    'echo $$ > "$root/agent.pid"',
    'exec "$agent" --root "$root"',
    '',
  ].join('\n');
}
