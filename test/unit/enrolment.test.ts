// Enrolment, both ends: the operator's tokens (derived per instance and nonce from its key) and the
// unclaimed agent that takes exactly one claim carrying the token whose hash its boot facts hold.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLAIM_PATH, type AgentConfig, type BootFacts, type Claim } from '../../src/api/index.ts';
import { UnclaimedAgent } from '../../src/agent/unclaimed.ts';
import { enrolmentToken, sha256hex } from '../../src/controllers/enrolment.ts';
import { claimAgent, probeAgent } from '../../src/controllers/runner/agent-probe.ts';
import { startupScript } from '../../src/providers/startup.ts';

const claim: Claim = {
  gitspace: { namespace: 'team-a', name: 'web', uid: 'uid-1' },
  repository: { url: 'https://git.example.com/web.git', credentials: { username: 'u', password: 'git-secret-123' } },
  devcontainerPath: '.devcontainer/devcontainer.json',
  ide: { type: 'ssh' },
  sshPublicKeys: [],
  env: [],
  ports: [],
  secret: 'hop-secret-0123456789abcdef',
};

describe('enrolment', () => {
  const key = 'k'.repeat(64);

  it('derives a different token for every instance and nonce, and only the hash goes into the boot payload', () => {
    const t = enrolmentToken(key, 'gs-a', 'n1');
    expect(t).to.equal(enrolmentToken(key, 'gs-a', 'n1'));
    expect(t).to.not.equal(enrolmentToken(key, 'gs-b', 'n1'));
    expect(t).to.not.equal(enrolmentToken(key, 'gs-a', 'n2'));
    expect(t).to.not.equal(enrolmentToken('other key', 'gs-a', 'n1'));
    const facts: BootFacts = { instance: 'gs-a', enrolmentSha256: sha256hex(t), listen: { address: '127.0.0.1', httpPort: 1, sshPort: 2 }, user: { name: 'gitspace', home: '/home/gitspace', sudo: true } };
    const script = startupScript(facts);
    const payload = Buffer.from(/GITSPACES_BOOT'\n([\s\S]*?)\nGITSPACES_BOOT/.exec(script)?.[1]?.replace(/\n/g, '') ?? '', 'base64').toString('utf8');
    expect(JSON.parse(payload)).to.deep.equal(facts);
    expect(script).to.not.include(t);
    expect(script).to.not.include(key);
  });

  describe('the unclaimed agent', () => {
    let dir: string;
    let agent: UnclaimedAgent;
    let became: AgentConfig | undefined;
    const port = 47_000 + Math.floor(Math.random() * 900);
    const token = enrolmentToken(key, 'gs-a', 'nonce');

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'gitspaces-enrol-'));
      const facts: BootFacts = { instance: 'gs-a', enrolmentSha256: sha256hex(token), listen: { address: '127.0.0.1', httpPort: port, sshPort: port + 1 }, user: { name: 'gitspace', home: join(dir, 'home'), sudo: false } };
      writeFileSync(join(dir, 'boot.json'), JSON.stringify(facts));
      agent = new UnclaimedAgent(facts, dir, (c) => {
        became = c;
        return Promise.resolve();
      });
      await agent.start();
    });
    after(async () => {
      await agent.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('answers health to anyone with its instance name and nothing else', async () => {
      const r = await probeAgent('127.0.0.1', port, '');
      expect(r.ok && r.health).to.include({ state: 'unclaimed', instance: 'gs-a' });
    });

    it('refuses a claim without the token or with a wrong or guessed one (401), and writes nothing', async () => {
      expect(await claimAgent('127.0.0.1', port, enrolmentToken(key, 'gs-b', 'nonce'), claim)).to.match(/\(401\)/);
      expect(await claimAgent('127.0.0.1', port, sha256hex(token), claim)).to.match(/\(401\)/); // the hash is not the token
      const bare = await fetch(`http://127.0.0.1:${String(port)}${CLAIM_PATH}`, { method: 'POST', body: JSON.stringify(claim) });
      expect(bare.status).to.equal(401);
      expect(() => statSync(join(dir, 'agent.json'))).to.throw();
      expect(became).to.equal(undefined);
    });

    it('takes the claim with its token: agent.json (0600) with the VM\'s own listen address and user, and the hash forgotten', async () => {
      expect(await claimAgent('127.0.0.1', port, token, { ...claim, repository: { ...claim.repository } })).to.equal(undefined);
      const written = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as AgentConfig;
      expect(statSync(join(dir, 'agent.json')).mode & 0o777).to.equal(0o600);
      expect(written).to.deep.include({ instance: 'gs-a', home: join(dir, 'home'), user: { name: 'gitspace', sudo: false } });
      expect(written.listen).to.deep.equal({ address: '127.0.0.1', httpPort: port, sshPort: port + 1 });
      expect(JSON.parse(readFileSync(join(dir, 'boot.json'), 'utf8'))).to.include({ enrolmentSha256: '' });
      await new Promise((r) => setTimeout(r, 100));
      expect(became?.gitspace.uid).to.equal('uid-1');
    });
  });
});
