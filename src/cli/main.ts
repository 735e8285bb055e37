#!/usr/bin/env node
// One binary, sub-commands (DESIGN.md).
import { stringify } from 'yaml';
import { allCRDs } from '../api/index.ts';
import { flag } from './flags.ts';

const usage = `usage: gitspaces <command> [flags]

commands:
  operator   run the controllers (--health-port 8081, --leader-elect, --workers 4, --local-dir DIR,
             --agent-bundles DIR (the bundles VMs download; default $GITSPACES_AGENT_BUNDLES),
             --gce-endpoint URL / --ec2-endpoint URL to talk to a fake or moto,
             --allow-local-provider to serve local infras: development only, ignored in a cluster,
             --gateway-url URL: the gateway whose /readyz the infras' GatewayReady reports)
  agent      run the VM agent (--root /var/lib/gitspaces: its boot facts, then its claimed config)
  gateway    run the authenticated gateway (--port 8080, --tls-cert/--tls-key FILE, --agent-bundles DIR,
             --activity-interval-ms, --idle-ms, --drain-ms, --jwks-cooldown-ms, --trusted-proxies CIDR,...,
             --headers-timeout-ms, --request-timeout-ms, --http-idle-ms, --max-connections)
  control-plane  the reference control plane (--port 8090 --db FILE --issuer URL --users-file FILE,
             delegate token from --delegate-token-file or $GITSPACES_DELEGATE_TOKEN,
             --token-ttl 15m (access tokens, 60s-24h), --refresh-ttl 12h (refresh tokens, 60s-720h))
  ssh        OpenSSH ProxyCommand to a Gitspace through the gateway: gitspaces ssh [--gateway URL] %h
  ssh-config print ~/.ssh/config entries for Gitspace hosts (what desktop IDEs connect with):
             gitspaces ssh-config [--gateway URL] [--identity-file FILE] [--known-hosts FILE] HOST...
             (with a token: the hosts' SSH keys go to FILE, default ~/.ssh/gitspaces_known_hosts, and are checked)
  crds       print the CustomResourceDefinitions (kubectl apply -f -)
`;

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'operator': {
    const { runOperator } = await import('./operator.ts');
    await runOperator(rest);
    break;
  }
  case 'agent': {
    const { runAgent } = await import('../agent/start.ts');
    await runAgent(flag(rest, '--root') ?? '/var/lib/gitspaces');
    break;
  }
  case 'gateway': {
    const { runGateway } = await import('./gateway.ts');
    await runGateway(rest);
    break;
  }
  case 'control-plane': {
    const { runControlPlane } = await import('./control-plane.ts');
    try {
      await runControlPlane(rest);
    } catch (e) {
      process.stderr.write(`gitspaces control-plane: ${(e as Error).message}\n`);
      process.exit(2);
    }
    break;
  }
  case 'ssh': {
    const { runSsh } = await import('./ssh.ts');
    try {
      await runSsh(rest);
    } catch (e) {
      process.stderr.write(`gitspaces ssh: ${(e as Error).message}\n`);
      process.exit(1);
    }
    process.exit(0);
    break;
  }
  case 'ssh-config': {
    const { runSshConfig } = await import('./ssh-config.ts');
    try {
      await runSshConfig(rest);
    } catch (e) {
      process.stderr.write(`gitspaces ssh-config: ${(e as Error).message}\n`);
      process.exit(2);
    }
    break;
  }
  case 'crds':
    process.stdout.write(allCRDs.map((c) => stringify(c, { lineWidth: 0 })).join('---\n'));
    break;
  case undefined:
  case 'help':
  case '--help':
    process.stdout.write(usage);
    break;
  default:
    process.stderr.write(`gitspaces: unknown command "${command}"\n${usage}`);
    process.exit(2);
}
