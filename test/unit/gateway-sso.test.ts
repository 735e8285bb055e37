// Single sign-on's pure parts: sealing, who may use a Gitspace (users and group:<name>), the user
// and groups claims, refresh timing, and what counts as a browser navigation.
import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { mayUse } from '../../src/gateway/access.ts';
import { userOf } from '../../src/gateway/claims.ts';
import { isNavigation } from '../../src/gateway/sso/login.ts';
import { Sealer } from '../../src/gateway/sso/seal.ts';
import { isSessionId, newSessionId, refreshDue, sessionHash, staleAt } from '../../src/gateway/sso/sessions.ts';

describe('single sign-on (pure parts)', () => {
  it('seals values that only the same key and purpose open, until they expire', () => {
    const a = new Sealer('hop-key-a');
    const sealed = a.seal('handoff', { sid: 'x' }, 1_000, 10_000);
    expect(a.open('handoff', sealed, 10_500)).to.deep.equal({ sid: 'x' });
    expect(a.open('handoff', sealed, 11_001), 'expired').to.equal(undefined);
    expect(a.open('login-flow', sealed, 10_500), 'another purpose').to.equal(undefined);
    expect(new Sealer('hop-key-b').open('handoff', sealed, 10_500), 'another key').to.equal(undefined);
    const raw = Buffer.from(sealed, 'base64url');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    expect(a.open('handoff', raw.toString('base64url'), 10_500), 'altered').to.equal(undefined);
    expect(a.open('handoff', 'not sealed', 10_500)).to.equal(undefined);
  });

  it('admits the owner, users sharedWith names and members of its groups; a user named group:x is no group', () => {
    const t = { owner: 'alice', sharedWith: ['bob', 'group:platform'] };
    const table: [string, string[], boolean][] = [
      ['alice', [], true], ['bob', [], true], ['carol', ['platform'], true], ['carol', ['other'], false], ['dave', [], false],
      ['group:platform', [], false], ['platform', [], false],
    ];
    for (const [sub, groups, want] of table) expect(mayUse({ sub, groups, exp: 0 }, t), `${sub} ${groups.join(',')}`).to.equal(want);
  });

  it('reads the user and groups from the configured claims, bounded', () => {
    expect(userOf({ sub: 'opaque', email: 'a@x', groups: ['g1', 2, '', 'g2'] }, 'email', 'groups')).to.deep.equal({ user: 'a@x', groups: ['g1', 'g2'] });
    expect(userOf({ sub: 'a', roles: 'admin' }, 'sub', 'roles')).to.deep.equal({ user: 'a', groups: ['admin'] });
    expect(userOf({ sub: 'x'.repeat(300) }, 'sub', 'groups').user).to.equal(undefined);
    expect(userOf({ sub: 'a', groups: Array.from({ length: 400 }, (_, i) => `g${String(i)}`) }, 'sub', 'groups').groups).to.have.length(256);
  });

  it('refreshes a third of a short lifetime early (30 s at most), and honours a stale session half a lifetime (60 s at most)', () => {
    expect(refreshDue({ refreshedAt: 0, freshUntil: 9_000 })).to.equal(6_000);
    expect(refreshDue({ refreshedAt: 0, freshUntil: 3_600_000 })).to.equal(3_570_000);
    expect(staleAt({ refreshedAt: 0, freshUntil: 10_000 })).to.equal(15_000);
    expect(staleAt({ refreshedAt: 0, freshUntil: 3_600_000 })).to.equal(3_660_000);
  });

  it('names sessions by 256 random bits, stored under a hash', () => {
    const sid = newSessionId();
    expect(isSessionId(sid)).to.equal(true);
    expect(isSessionId('eyJhbGciOi.x.y')).to.equal(false);
    expect(sessionHash(sid)).to.match(/^[0-9a-f]{40}$/);
    expect(sessionHash(sid)).to.not.include(sid.slice(0, 8));
  });

  it('sends only page loads to sign in: not scripts, not API clients', () => {
    const req = (method: string, headers: Record<string, string>) => ({ method, headers }) as unknown as IncomingMessage;
    expect(isNavigation(req('GET', { 'sec-fetch-mode': 'navigate' }))).to.equal(true);
    expect(isNavigation(req('GET', { accept: 'text/html,application/xhtml+xml' }))).to.equal(true);
    expect(isNavigation(req('GET', { 'sec-fetch-mode': 'cors', accept: 'text/html' }))).to.equal(false);
    expect(isNavigation(req('GET', { accept: 'application/json' }))).to.equal(false);
    expect(isNavigation(req('POST', { 'sec-fetch-mode': 'navigate' }))).to.equal(false);
    expect(isNavigation(req('GET', { 'sec-fetch-mode': 'navigate', authorization: 'Bearer x' }))).to.equal(false);
  });
});
