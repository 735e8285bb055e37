// The reference control plane's own hygiene: API users come from a file or the environment with
// real tokens (an empty one would have matched a bare "Bearer "), and its database, which holds
// the token signing key, is readable by its owner only.
import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane } from '../../src/controlplane/server.ts';
import { parseUsers } from '../../src/controlplane/users.ts';

describe('reference control plane hygiene', () => {
  it('parses TOKEN=SUBJECT users and refuses empty, short or repeated tokens, naming the entry', () => {
    expect(parseUsers(['# team', 'alice-api-token=alice@example.com', '', ' bob-api-token-1 = bob@example.com '], 'users.txt')).to.deep.equal({ 'alice-api-token': 'alice@example.com', 'bob-api-token-1': 'bob@example.com' });
    expect(() => parseUsers(['=alice@example.com'], 'users.txt')).to.throw('users.txt, entry 1: expected TOKEN=SUBJECT with both parts');
    expect(() => parseUsers(['alice-api-token='], '$GITSPACES_USERS')).to.throw('$GITSPACES_USERS, entry 1: expected TOKEN=SUBJECT');
    expect(() => parseUsers(['ok', 'short=alice'], 'users.txt')).to.throw('users.txt, entry 1');
    expect(() => parseUsers(['tok en tok en=alice'], 'f')).to.throw('at least 12 characters and no spaces');
    expect(() => parseUsers(['alice-api-token=a', 'alice-api-token=b'], 'f')).to.throw('entry 2: the same token twice');
  });

  it('refuses to start with an empty user token, and an empty bearer token gets nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-users-'));
    try {
      expect(() => new ControlPlane({ dbPath: join(dir, 'a.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: 'delegate-token-123', users: { '': 'alice@example.com' } })).to.throw('at least 12 characters');
      const cp = new ControlPlane({ dbPath: join(dir, 'b.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: 'delegate-token-123', users: { 'alice-api-token': 'alice@example.com' } });
      await cp.start();
      try {
        const bare = await fetch(`http://127.0.0.1:${String(cp.port)}/api/v1/gitspaces`, { headers: { authorization: 'Bearer ' } });
        expect(bare.status).to.equal(401);
        const alice = await fetch(`http://127.0.0.1:${String(cp.port)}/api/v1/gitspaces`, { headers: { authorization: 'Bearer alice-api-token' } });
        expect(alice.status).to.equal(200);
      } finally {
        await cp.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps its database (and the signing key in it) readable by its owner only, also when the file existed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-db-'));
    try {
      writeFileSync(join(dir, 'old.db'), '', { mode: 0o644 });
      for (const name of ['new.db', 'old.db']) {
        const cp = new ControlPlane({ dbPath: join(dir, name), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: 'delegate-token-123', users: {} });
        await cp.start();
        await cp.stop();
        expect(statSync(join(dir, name)).mode & 0o777, name).to.equal(0o600);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
