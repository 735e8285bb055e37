// The reference control plane's tokens, over real HTTP: the access token lives as long as it is
// configured to, a refresh token gets a new access token and a new refresh token once (rotation),
// a second use of one ends its whole chain (reuse detection), and expiry, revocation, a deleted
// Gitspace or a removed user end it too. The CLI's lifetimes are bounded.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { controlPlaneOptions, durationFlag } from '../../src/cli/control-plane.ts';
import { ControlPlane, type ControlPlaneOptions } from '../../src/controlplane/server.ts';
import { MAX_LIVE_REFRESH_TOKENS } from '../../src/controlplane/tokens.ts';

interface Issued { token: string; expiresAt: string; refreshToken: string; refreshExpiresAt: string; access_token: string; token_type: string; expires_in: number; refresh_token: string }

const ALICE = 'alice-api-token';
const BOB = 'bob-api-token-1';

describe('reference control plane tokens', () => {
  let dir: string;
  let cp: ControlPlane;
  let clock: number;
  let base: string;

  const start = async (o: Partial<ControlPlaneOptions> = {}, db = 'cp.db') => {
    cp = new ControlPlane({
      dbPath: join(dir, db), port: 0, address: '127.0.0.1', issuer: 'http://cp.test', delegateToken: 'delegate-token-123',
      users: { [ALICE]: 'alice@example.com', [BOB]: 'bob@example.com' }, now: () => clock, ...o,
    });
    await cp.start();
    base = `http://127.0.0.1:${String(cp.port)}`;
  };
  const api = async (method: string, path: string, body?: unknown, token = ALICE) => {
    const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, headers: r.headers, json: (await r.json()) as Record<string, unknown> };
  };
  const gitspace = async (id: string, token = ALICE) => {
    expect((await api('POST', '/api/v1/gitspaces', { id, infra: 'local', repository: { url: 'https://example.com/r.git' }, machineType: 'small' }, token)).status).to.equal(201);
  };
  const issue = async (id: string) => {
    const r = await api('POST', `/api/v1/gitspaces/${id}/token`);
    expect(r.status).to.equal(200);
    expect(r.headers.get('cache-control')).to.equal('no-store');
    return r.json as unknown as Issued;
  };
  const refresh = async (refreshToken: string, form = false) => {
    const r = await fetch(`${base}/api/v1/token`, form
      ? { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString() }
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refreshToken }) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> & Partial<Issued> };
  };
  const revoke = async (body: string, type = 'application/x-www-form-urlencoded') => {
    const r = await fetch(`${base}/api/v1/token/revoke`, { method: 'POST', headers: { 'content-type': type }, body });
    return { status: r.status, text: await r.text() };
  };
  const verify = async (token: string) => {
    const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
    return (await jwtVerify(token, jwks, { issuer: 'http://cp.test', audience: 'gitspaces', currentDate: new Date(clock) })).payload;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-tokens-'));
    clock = Date.parse('2030-01-01T00:00:00Z');
  });
  afterEach(async () => {
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('issues access tokens with the configured lifetime, and a refresh token that expires after its own', async () => {
    await start({ tokenTtlSeconds: 120, refreshTtlSeconds: 3600 });
    await gitspace('alpha');
    const t = await issue('alpha');
    const claims = decodeJwt(t.token);
    expect(claims.exp! - claims.iat!).to.equal(120);
    expect(claims.sub).to.equal('alice@example.com');
    expect(t.expiresAt).to.equal(new Date(clock + 120_000).toISOString());
    expect(t.expires_in).to.equal(120);
    expect(t.access_token).to.equal(t.token);
    expect(t.refreshToken).to.match(/^gsr_[A-Za-z0-9_-]{43}$/);
    expect(t.refresh_token).to.equal(t.refreshToken);
    expect(t.refreshExpiresAt).to.equal(new Date(clock + 3_600_000).toISOString());
    // Only the hash is stored.
    const rows = cp.store.db.prepare('SELECT * FROM refresh_tokens').all();
    expect(rows).to.have.length(1);
    expect(JSON.stringify(rows)).not.to.include(t.refreshToken);
    // The default is 15 minutes.
    await cp.stop();
    await start({}, 'other.db');
    await gitspace('alpha');
    const d = decodeJwt((await issue('alpha')).token);
    expect(d.exp! - d.iat!).to.equal(900);
  });

  it('refreshes into a working access token and a new refresh token (JSON and form-encoded), with the old one consumed', async () => {
    await start({ tokenTtlSeconds: 300 });
    await gitspace('alpha');
    const first = await issue('alpha');
    clock += 200_000;
    const r = await refresh(first.refreshToken);
    expect(r.status).to.equal(200);
    expect(r.json.token_type).to.equal('Bearer');
    expect(r.json.refreshToken).to.match(/^gsr_/).and.not.equal(first.refreshToken);
    const claims = await verify(r.json.token!);
    expect(claims).to.include({ sub: 'alice@example.com', gitspace: 'alpha' });
    expect(claims.exp! - claims.iat!).to.equal(300);
    expect(claims.iat).to.equal(Math.floor(clock / 1000));
    // The next one by form, as an OAuth 2.0 client would send it.
    const r2 = await refresh(r.json.refreshToken!, true);
    expect(r2.status).to.equal(200);
    await verify(r2.json.access_token!);
    expect(r2.json.refresh_token).not.to.equal(r.json.refreshToken);
  });

  it('refuses a consumed refresh token and revokes its whole chain, leaving other chains alone', async () => {
    await start();
    await gitspace('alpha');
    const first = await issue('alpha');
    const other = await issue('alpha');
    const second = await refresh(first.refreshToken);
    expect(second.status).to.equal(200);
    const reuse = await refresh(first.refreshToken);
    expect(reuse.status).to.equal(400);
    expect(reuse.json.error).to.equal('invalid_grant');
    expect(reuse.json.error_description).to.include('already used');
    expect(JSON.stringify(reuse.json)).not.to.match(/at |\.ts/);
    // The newer token of the same chain stopped working too.
    const newer = await refresh(second.json.refreshToken!);
    expect(newer.status).to.equal(400);
    expect(newer.json).to.include({ error: 'invalid_grant', error_description: 'the refresh token was revoked' });
    // Another login's chain is untouched.
    expect((await refresh(other.refreshToken)).status).to.equal(200);
  });

  it('lets one of two racing refreshes with the same token win, and then ends the chain', async () => {
    await start();
    await gitspace('alpha');
    const t = await issue('alpha');
    const both = await Promise.all([refresh(t.refreshToken), refresh(t.refreshToken, true)]);
    expect(both.map((r) => r.status).sort()).to.deep.equal([200, 400]);
    const winner = both.find((r) => r.status === 200)!;
    expect((await refresh(winner.json.refreshToken!)).json.error).to.equal('invalid_grant');
  });

  it('refuses an expired refresh token, an unknown one, and bad requests, OAuth-style', async () => {
    await start({ refreshTtlSeconds: 600 });
    await gitspace('alpha');
    const t = await issue('alpha');
    clock += 600_000;
    expect((await refresh(t.refreshToken)).json).to.deep.equal({ error: 'invalid_grant', error_description: 'the refresh token expired' });
    expect((await refresh('gsr_nothing')).json).to.include({ error: 'invalid_grant', error_description: 'unknown refresh token' });
    expect((await refresh(`gsr_${'a'.repeat(200)}`)).json).to.include({ error: 'invalid_request', error_description: 'refresh_token is too long' });
    const post = async (body: string, type = 'application/json') => {
      const r = await fetch(`${base}/api/v1/token`, { method: 'POST', headers: { 'content-type': type }, body });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    expect(await post(JSON.stringify({ grant_type: 'password', username: 'a' }))).to.deep.equal({ status: 400, json: { error: 'unsupported_grant_type', error_description: 'only grant_type=refresh_token is supported' } });
    expect((await post(JSON.stringify({ grant_type: 'refresh_token' }))).json.error).to.equal('invalid_request');
    expect((await post(JSON.stringify({ grant_type: 'refresh_token', refresh_token: 7 }))).json.error).to.equal('invalid_request');
    expect((await post('{not json')).json).to.include({ error: 'invalid_request' });
    expect((await post(JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'x'.repeat(10_000) }))).status).to.equal(413);
    expect((await post('grant_type=refresh_token', 'text/plain')).json.error).to.equal('invalid_request');
  });

  it('revokes a chain (form or JSON), answering 200 also for tokens it does not know', async () => {
    await start();
    await gitspace('alpha');
    const a = await issue('alpha');
    const b = await issue('alpha');
    const a2 = await refresh(a.refreshToken);
    expect(await revoke(new URLSearchParams({ token: a2.json.refreshToken!, token_type_hint: 'refresh_token' }).toString())).to.deep.equal({ status: 200, text: '' });
    expect((await refresh(a2.json.refreshToken!)).json.error).to.equal('invalid_grant');
    expect((await revoke(JSON.stringify({ token: b.refreshToken }), 'application/json')).status).to.equal(200);
    expect((await refresh(b.refreshToken)).json.error).to.equal('invalid_grant');
    expect((await revoke('token=gsr_unknown')).status).to.equal(200);
    expect((await revoke(`token=${'x'.repeat(300)}`)).status).to.equal(200);
    expect((await revoke(new URLSearchParams({ token: a.token }).toString())).status).to.equal(200);
    expect((await revoke('{}', 'application/json')).status).to.equal(400);
  });

  it('refuses the refresh token of a deleted Gitspace, also once a new Gitspace takes its id', async () => {
    await start();
    await gitspace('alpha');
    const t = await issue('alpha');
    const kept = await issue('alpha');
    expect((await api('DELETE', '/api/v1/gitspaces/alpha')).status).to.equal(202);
    expect((await refresh(t.refreshToken)).json).to.include({ error: 'invalid_grant', error_description: 'the Gitspace is gone or no longer this user\'s' });
    // The delegate confirms the delete: the Gitspace and its tokens are forgotten, and the same
    // user creates a new Gitspace of the same name, which the old tokens must not reach.
    cp.store.result(cp.store.openTaskOf('alpha')!.id, 'succeeded');
    cp.store.purge('alpha');
    expect(cp.store.db.prepare('SELECT COUNT(*) AS n FROM refresh_tokens').get()).to.deep.equal({ n: 0 });
    await gitspace('alpha');
    expect((await refresh(kept.refreshToken)).json).to.include({ error: 'invalid_grant', error_description: 'unknown refresh token' });
  });

  it('keeps refresh tokens across a restart, but not for a user who was removed', async () => {
    await start();
    await gitspace('alpha');
    await gitspace('beta', BOB);
    const a = await issue('alpha');
    const b = (await api('POST', '/api/v1/gitspaces/beta/token', undefined, BOB)).json as unknown as Issued;
    await cp.stop();
    await start({ users: { [ALICE]: 'alice@example.com' } });
    expect((await refresh(a.refreshToken)).status).to.equal(200);
    expect((await refresh(b.refreshToken)).json.error).to.equal('invalid_grant');
  });

  it(`keeps at most ${String(MAX_LIVE_REFRESH_TOKENS)} live refresh tokens per user and Gitspace`, async () => {
    await start();
    await gitspace('alpha');
    const all: Issued[] = [];
    for (let i = 0; i <= MAX_LIVE_REFRESH_TOKENS; i++) all.push(await issue('alpha'));
    expect((await refresh(all[0]!.refreshToken)).json.error).to.equal('invalid_grant');
    expect((await refresh(all[1]!.refreshToken)).status).to.equal(200);
  });
});

describe('control-plane token lifetime flags', () => {
  it('accepts s, m and h durations within bounds and refuses others clearly', () => {
    expect(durationFlag('--token-ttl', '15m', 60, 86_400)).to.equal(900);
    expect(durationFlag('--token-ttl', '60', 60, 86_400)).to.equal(60);
    expect(durationFlag('--token-ttl', '90s', 60, 86_400)).to.equal(90);
    expect(durationFlag('--token-ttl', '24h', 60, 86_400)).to.equal(86_400);
    expect(() => durationFlag('--token-ttl', '59s', 60, 86_400)).to.throw('--token-ttl 59s: must be between 1m and 24h');
    expect(() => durationFlag('--token-ttl', '25h', 60, 86_400)).to.throw('must be between 1m and 24h');
    expect(() => durationFlag('--token-ttl', '1d', 60, 86_400)).to.throw('--token-ttl "1d": expected a duration such as 90s, 15m or 12h');
    expect(() => durationFlag('--token-ttl', '-5m', 60, 86_400)).to.throw('expected a duration');
    expect(() => durationFlag('--token-ttl', '', 60, 86_400)).to.throw('expected a duration');
  });

  it('puts --token-ttl and --refresh-ttl into the server options', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-flags-'));
    try {
      writeFileSync(join(dir, 'delegate'), 'delegate-token-123\n');
      const base = ['--delegate-token-file', join(dir, 'delegate'), '--db', join(dir, 'cp.db')];
      const o = controlPlaneOptions([...base, '--token-ttl', '5m', '--refresh-ttl=2h']);
      expect(o).to.include({ tokenTtlSeconds: 300, refreshTtlSeconds: 7200 });
      expect(controlPlaneOptions(base)).not.to.have.any.keys('tokenTtlSeconds', 'refreshTtlSeconds');
      expect(() => controlPlaneOptions([...base, '--token-ttl', '48h'])).to.throw('--token-ttl 48h: must be between 1m and 24h');
      expect(() => controlPlaneOptions([...base, '--refresh-ttl', '30s'])).to.throw('--refresh-ttl 30s: must be between 1m and 720h');
      expect(() => new ControlPlane({ ...o, port: 0, users: {}, tokenTtlSeconds: 0 })).to.throw('tokenTtlSeconds must be a positive whole number');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
