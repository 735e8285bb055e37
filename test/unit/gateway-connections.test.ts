// The gateway's upgraded connections: use of a Gitspace is marked at most once a second per
// connection however many chunks arrive, anonymous (public port) traffic never marks it, and the
// connection's audit line counts every byte.
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { Audit } from '../../src/gateway/audit.ts';
import { Connections } from '../../src/gateway/connections.ts';
import type { Match } from '../../src/gateway/routes.ts';

const match: Match = {
  target: { key: 'team-a/web', namespace: 'team-a', name: 'web', infra: 'gcp', owner: 'dev@example.com', sharedWith: [], phase: 'Running' },
  path: '/', cookiePath: '/', kind: 'host', host: 'web--team-a.gitspaces.example.com',
};

describe('gateway connections', () => {
  const setUp = () => {
    const lines: Record<string, unknown>[] = [];
    const uses: string[] = [];
    const registry = new Registry();
    const c = new Connections({
      audit: new Audit((l) => lines.push(JSON.parse(l) as Record<string, unknown>)), registry,
      sessionAlive: () => true, sessionInUse: () => undefined, onUse: (_m, kind) => uses.push(kind),
    });
    return { c, lines, uses, registry };
  };

  it('marks use once per second per connection, not per chunk, and audits every byte', async () => {
    const { c, lines, uses, registry } = setUp();
    const h = c.hooks(new PassThrough(), 'websocket', match, { sub: 'dev@example.com', session: 's1', exp: 0 }, '10.0.0.1', 60_000, false);
    h.onOpen(() => undefined);
    for (let k = 0; k < 5_000; k++) h.onData(100);
    expect(uses).to.deep.equal(['websocket']);
    expect(await registry.getSingleMetricAsString('gitspaces_gateway_sessions_active')).to.include('gitspaces_gateway_sessions_active{gitspace="team-a/web"} 1');
    await new Promise((r) => setTimeout(r, 1_050));
    h.onData(100);
    expect(uses).to.have.length(2);
    h.onClose('closed');
    expect(lines[0]).to.include({ bytesIn: 500_100, result: 'closed', user: 'dev@example.com' });
  });

  it('never marks use for anonymous traffic (a public port)', () => {
    const { c, uses } = setUp();
    const h = c.hooks(new PassThrough(), 'websocket', { ...match, kind: 'port' }, { sub: '', exp: 0 }, '10.0.0.1', 60_000, true);
    h.onOpen(() => undefined);
    for (let k = 0; k < 100; k++) h.onData(10);
    expect(uses).to.deep.equal([]);
  });
});
