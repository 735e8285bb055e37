// The runner's decision table, and the names and links it derives.
import { expect } from 'chai';
import type { Gitspace, GitspaceInfra } from '../../src/api/index.ts';
import { decide, FAST_POLL_MS, type DecideInput } from '../../src/controllers/runner/decide.ts';
import { bundleBaseURL } from '../../src/controllers/enrolment.ts';
import { gatewayHost, instanceName, parseDuration, publishedPorts, route, userURLs } from '../../src/controllers/runner/naming.ts';
import { sshConfig } from '../../src/cli/ssh-config.ts';

const now = Date.parse('2026-11-23T12:00:00Z');
const ready = (lastActivityTime = new Date(now).toISOString()) => ({ reachable: true as const, state: 'ready' as const, lastActivityTime });
const base: DecideInput = { desired: 'Running', idleTimeoutMs: 0, now };

describe('runner decide()', () => {
  const rows: [string, Partial<DecideInput>, string, string, string?][] = [
    // name, input, action, phase, Ready reason
    ['no instance, want Running', {}, 'create', 'Provisioning', 'Provisioning'],
    ['terminated instance is as good as none', { instance: { state: 'terminated' } }, 'create', 'Provisioning'],
    ['booting', { instance: { state: 'pending' } }, 'none', 'Provisioning'],
    ['stopped, want Running: start it (resume)', { instance: { state: 'stopped' } }, 'start', 'Starting'],
    ['still stopping, want Running: wait', { instance: { state: 'stopping' } }, 'none', 'Stopping'],
    ['running, agent silent', { instance: { state: 'running', address: '10.0.0.5' }, agent: { reachable: false, error: 'ECONNREFUSED' } }, 'none', 'Starting', 'Starting'],
    ['running, agent setting up', { instance: { state: 'running' }, agent: { reachable: true, state: 'setting-up', step: { name: 'clone' } } }, 'none', 'Starting', 'SettingUp'],
    ['running, a step failed', { instance: { state: 'running' }, agent: { reachable: true, state: 'failed', step: { name: 'clone', message: 'no such repo' } } }, 'none', 'Failed', 'StepFailed'],
    ['running and ready', { instance: { state: 'running' }, agent: ready() }, 'none', 'Running', 'Ready'],
    ['idle past the timeout', { instance: { state: 'running' }, agent: ready(new Date(now - 31 * 60_000).toISOString()), idleTimeoutMs: 30 * 60_000 }, 'autoStop', 'Stopping', 'AutoStopped'],
    ['active within the timeout', { instance: { state: 'running' }, agent: ready(new Date(now - 29 * 60_000).toISOString()), idleTimeoutMs: 30 * 60_000 }, 'none', 'Running', 'Ready'],
    ['want Stopped, no instance', { desired: 'Stopped' }, 'none', 'Stopped', 'Stopped'],
    ['want Stopped, running', { desired: 'Stopped', instance: { state: 'running' } }, 'stop', 'Stopping'],
    ['want Stopped, booting', { desired: 'Stopped', instance: { state: 'pending' } }, 'stop', 'Stopping'],
    ['want Stopped, stopping', { desired: 'Stopped', instance: { state: 'stopping' } }, 'none', 'Stopping'],
    ['want Stopped, stopped', { desired: 'Stopped', instance: { state: 'stopped' } }, 'none', 'Stopped', 'Stopped'],
  ];
  for (const [name, input, action, phase, readyReason] of rows) {
    it(name, () => {
      const d = decide({ ...base, ...input });
      expect(d.action).to.equal(action);
      expect(d.phase).to.equal(phase);
      if (readyReason) expect(d.conditions.Ready.reason).to.equal(readyReason);
      expect(d.conditions.Ready.status).to.equal(phase === 'Running' ? 'True' : 'False');
    });
  }

  it('polls fast while changing, and wakes for the idle deadline while steady', () => {
    expect(decide(base).requeueAfterMs).to.equal(FAST_POLL_MS);
    const d = decide({ ...base, instance: { state: 'running' }, agent: ready(new Date(now - 25 * 60_000).toISOString()), idleTimeoutMs: 30 * 60_000 });
    expect(d.requeueAfterMs).to.be.within(29_000, 30_100);
    const soon = decide({ ...base, instance: { state: 'running' }, agent: ready(new Date(now - 29.9 * 60_000).toISOString()), idleTimeoutMs: 30 * 60_000 });
    expect(soon.requeueAfterMs).to.be.below(7_000);
  });

  it('says which step failed and why', () => {
    const d = decide({ ...base, instance: { state: 'running' }, agent: { reachable: true, state: 'failed', step: { name: 'postCreateCommand', message: 'exited 2' } } });
    expect(d.message).to.equal('set-up step postCreateCommand: exited 2');
    expect(d.conditions.IDEReady).to.include({ status: 'False', reason: 'StepFailed' });
  });
});

describe('runner naming', () => {
  const gs = (ide: Record<string, string>): Gitspace => ({
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'Gitspace',
    metadata: { name: 'web', namespace: 'team-a', uid: '0b7c1c9e-1111-2222-3333-444455556666' },
    spec: { infraRef: { name: 'gcp' }, owner: 'a', repository: { url: 'https://github.com/acme/shop.git' }, machineType: 'm', ide: ide, ports: [{ port: 3000, name: 'web' }] },
  });
  const infra = { spec: { gateway: { domain: 'gs.example.com', tlsSecretRef: { name: 'tls' } } } } as unknown as GitspaceInfra;

  it('names the instance after the UID and the host after name and namespace', () => {
    expect(instanceName(gs({}))).to.equal('gs-0b7c1c9e-1111-2222-3333-444455556666');
    expect(gatewayHost(gs({}), infra)).to.equal('web--team-a.gs.example.com');
    expect(route(gs({}), infra, 'http://10.0.0.5:47100')).to.deep.equal({
      host: 'web--team-a.gs.example.com',
      path: '/gitspaces/team-a/web/',
      upstream: 'http://10.0.0.5:47100',
      ports: [{ port: 3000, name: 'web', visibility: 'private', protocol: 'http', host: '3000--web--team-a.gs.example.com' }],
    });
  });

  it('gives each IDE the link it opens', () => {
    const checkout = '/home/gitspace/shop';
    const url = (ide: Record<string, string>) => userURLs(gs(ide), infra, checkout).ide;
    expect(url({ type: 'vscode-web' })).to.equal('https://web--team-a.gs.example.com/?folder=%2Fhome%2Fgitspace%2Fshop');
    expect(url({ type: 'vscode' })).to.equal('vscode://vscode-remote/ssh-remote+web--team-a.gs.example.com/home/gitspace/shop');
    expect(url({ type: 'cursor' })).to.match(/^cursor:\/\/vscode-remote\/ssh-remote\+/);
    expect(url({ type: 'windsurf' })).to.match(/^windsurf:\/\/vscode-remote\/ssh-remote\+/);
    expect(url({ type: 'jetbrains', product: 'goland' })).to.match(/^jetbrains-gateway:\/\/connect#.*host=web--team-a\.gs\.example\.com.*productCode=GO/);
    expect(url({ type: 'ssh' })).to.equal("ssh -o ProxyCommand='gitspaces ssh %h' web--team-a.gs.example.com");
    expect(userURLs(gs({}), infra, checkout).ports).to.deep.equal({ 3000: 'https://3000--web--team-a.gs.example.com/' });
  });

  it('puts the gateway port in web links when it is not the scheme\'s own (a NodePort, the development gateway); never in ssh aliases', () => {
    const on = (gateway: Record<string, unknown>) => ({ spec: { gateway: { domain: 'gs.example.com', ...gateway } } }) as unknown as GitspaceInfra;
    const links = (gateway: Record<string, unknown>) => userURLs(gs({ type: 'vscode-web' }), on(gateway), '/w');
    expect(links({ tlsSecretRef: { name: 'tls' }, port: 30443 })).to.deep.include({ ide: 'https://web--team-a.gs.example.com:30443/?folder=%2Fw', ports: { 3000: 'https://3000--web--team-a.gs.example.com:30443/' } });
    expect(links({ port: 8080 }).ide).to.equal('http://web--team-a.gs.example.com:8080/?folder=%2Fw');
    expect(links({ tlsSecretRef: { name: 'tls' }, port: 443 }).ide).to.equal('https://web--team-a.gs.example.com/?folder=%2Fw');
    expect(links({ port: 80 }).ide).to.equal('http://web--team-a.gs.example.com/?folder=%2Fw');
    expect(links({ tlsSecretRef: { name: 'tls' }, port: 80 }).ide, 'port 80 is not https\'s own').to.equal('https://web--team-a.gs.example.com:80/?folder=%2Fw');
    expect(links({ port: 30443 }).ssh).to.equal("ssh -o ProxyCommand='gitspaces ssh %h' web--team-a.gs.example.com");
    expect(bundleBaseURL(on({ port: 8080 }))).to.equal('http://gs.example.com:8080/.gitspaces/agent');
    expect(bundleBaseURL(on({ tlsSecretRef: { name: 'tls' } }))).to.equal('https://gs.example.com/.gitspaces/agent');
  });

  it('publishes only real, distinct forwarded ports, and no more than status.route.ports holds (the agent may say anything)', () => {
    const hostile = [0, -1, 70_000, 3.5, 3000, 8080, 8080, ...Array.from({ length: 500 }, (_, i) => 10_000 + i)];
    const ports = publishedPorts(gs({}), infra, hostile);
    expect(ports).to.have.length(64);
    expect(ports.slice(0, 3).map((p) => p.port)).to.deep.equal([3000, 8080, 10_000]);
    expect(ports.every((p) => Number.isInteger(p.port) && p.port > 0 && p.port < 65_536)).to.equal(true);
  });

  it('publishes spec.ports and the devcontainer\'s forwardPorts; public only where the infra allows it', () => {
    const g = gs({});
    g.spec.ports = [{ port: 3000, name: 'web', visibility: 'public' }, { port: 5000, visibility: 'shared' }];
    const withForwarded = publishedPorts(g, infra, [3000, 8080]);
    expect(withForwarded).to.deep.equal([
      { port: 3000, name: 'web', visibility: 'shared', protocol: 'http', host: '3000--web--team-a.gs.example.com' },
      { port: 5000, visibility: 'shared', protocol: 'http', host: '5000--web--team-a.gs.example.com' },
      { port: 8080, visibility: 'private', protocol: 'http', host: '8080--web--team-a.gs.example.com' },
    ]);
    const open = { spec: { gateway: { ...infra.spec.gateway, allowPublicPorts: true } } } as unknown as GitspaceInfra;
    expect(publishedPorts(g, open)[0]?.visibility).to.equal('public');
    expect(userURLs(g, infra, '/home/gitspace/shop', withForwarded).ports).to.deep.equal({
      3000: 'https://3000--web--team-a.gs.example.com/', 5000: 'https://5000--web--team-a.gs.example.com/', 8080: 'https://8080--web--team-a.gs.example.com/',
    });
  });

  it('prints the ssh config entry desktop IDEs use (gitspaces ssh as ProxyCommand)', () => {
    const text = sshConfig(['web--team-a.gs.example.com'], { gateway: 'https://gs.example.com', identityFile: '~/.ssh/id_ed25519' });
    expect(text).to.equal([
      'Host web--team-a.gs.example.com',
      '  HostName web--team-a.gs.example.com',
      '  User gitspace',
      '  ProxyCommand gitspaces ssh --gateway https://gs.example.com %h',
      '  IdentityFile ~/.ssh/id_ed25519',
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking accept-new',
      '  ServerAliveInterval 30',
      '',
    ].join('\n'));
  });

  it('parses Go durations', () => {
    expect(parseDuration('1h30m')).to.equal(5_400_000);
    expect(parseDuration('45s')).to.equal(45_000);
    expect(parseDuration('0')).to.equal(0);
    expect(parseDuration('1.5h')).to.equal(5_400_000);
    expect(parseDuration('forever')).to.equal(undefined);
    expect(parseDuration(undefined)).to.equal(undefined);
  });
});
