// The agent of a VM that has booted but has no Gitspace configuration yet: every new VM (cold
// start or warm pool) starts here. It knows only its boot facts (non-secret, from metadata):
// its instance name and the SHA-256 of a one-time enrolment token. It answers GET /healthz with
// `unclaimed` and its instance name (nothing else, to anyone: there is nothing secret to say), and
// accepts exactly one POST /v1/claim whose bearer token hashes to that SHA-256. The claim is
// written to agent.json (readable by root only) and the enrolment hash is forgotten; the normal
// agent takes over the same port, and after any later boot it starts from agent.json directly.
import { createHash, timingSafeEqual } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { CLAIM_PATH, type AgentConfig, type AgentHealth, type BootFacts, type Claim } from '../api/agent.ts';
import { readBody } from './body.ts';
import { listenAddress, log } from './log.ts';

const MAX_CLAIM_BYTES = 1 << 20;
const CLAIM_TIMEOUT_MS = 10_000;

function unclaimedHealth(instance: string): AgentHealth {
  return {
    state: 'unclaimed', instance, restart: false, steps: [], ide: { type: '', ready: false }, checkout: '', forwardPorts: [],
    devcontainer: { found: false, notApplied: [], containerBuild: 'skipped' }, lastActivityTime: new Date().toISOString(),
  };
}

/** The fields a claim must carry to be usable; returns what is wrong, or undefined. */
export function claimProblem(c: Partial<Claim>): string | undefined {
  if (typeof c.secret !== 'string' || c.secret.length < 16) return 'secret is missing or too short';
  if (typeof c.gitspace?.uid !== 'string' || !c.gitspace.uid) return 'gitspace.uid is missing';
  if (typeof c.repository?.url !== 'string' || !c.repository.url) return 'repository.url is missing';
  if (!Array.isArray(c.sshPublicKeys) || !Array.isArray(c.env) || !Array.isArray(c.ports)) return 'sshPublicKeys, env and ports must be arrays';
  if (typeof c.devcontainerPath !== 'string' || typeof c.ide?.type !== 'string') return 'devcontainerPath and ide.type are required';
  return undefined;
}

/** Whether the Authorization header carries the token whose SHA-256 is `sha256hex` (constant time). */
export function tokenMatches(sha256hex: string, authorization: string | undefined): boolean {
  const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
  if (!token || !/^[0-9a-f]{64}$/.test(sha256hex)) return false;
  const got = createHash('sha256').update(token).digest();
  return timingSafeEqual(got, Buffer.from(sha256hex, 'hex'));
}


export class UnclaimedAgent {
  private readonly facts: BootFacts;
  private readonly root: string;
  private readonly becomeGitspace: (config: AgentConfig) => Promise<void>;
  private http: Server | undefined;
  /** Set by the one accepted claim (or a claim being written): every later one is a 409. */
  private claimed = false;

  constructor(facts: BootFacts, root: string, becomeGitspace: (config: AgentConfig) => Promise<void>) {
    this.facts = facts;
    this.root = root;
    this.becomeGitspace = becomeGitspace;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') return json(200, unclaimedHealth(this.facts.instance));
    if (path !== CLAIM_PATH || req.method !== 'POST') return json(404, { error: 'not found' });
    if (this.claimed) return json(409, { error: 'already claimed' });
    if (!tokenMatches(this.facts.enrolmentSha256, req.headers.authorization)) {
      log('claim refused: wrong enrolment token', { from: req.socket.remoteAddress });
      return json(401, { error: 'wrong enrolment token' });
    }
    this.claimed = true; // one claim at a time, and only one ever
    readBody(req, { maxBytes: MAX_CLAIM_BYTES, timeoutMs: CLAIM_TIMEOUT_MS, what: 'claim' }).then(
      (text) => {
        let claim: Partial<Claim>;
        try {
          claim = JSON.parse(text) as Partial<Claim>;
        } catch {
          this.claimed = false;
          return json(400, { error: 'the claim is not JSON' });
        }
        const problem = claimProblem(claim);
        if (problem) {
          this.claimed = false;
          return json(400, { error: problem });
        }
        // Where this VM listens and who its user is are the VM's boot facts, not the claimant's.
        const { listen, user } = this.facts;
        const config: AgentConfig = {
          ...(claim as Claim), listen, home: user.home, user: { name: user.name, sudo: user.sudo }, instance: this.facts.instance,
          ...(this.facts.installDocker ? { installDocker: true } : {}),
        };
        const path = join(this.root, 'agent.json');
        writeFileSync(`${path}.tmp`, JSON.stringify(config), { mode: 0o600 });
        renameSync(`${path}.tmp`, path);
        // The token is spent: the hash goes too (a later boot starts from agent.json and never
        // listens for a claim again).
        writeFileSync(join(this.root, 'boot.json'), JSON.stringify({ ...this.facts, enrolmentSha256: '' }), { mode: 0o600 });
        log('claimed', { gitspace: `${config.gitspace.namespace}/${config.gitspace.name}`, uid: config.gitspace.uid });
        res.once('finish', () => {
          void this.stop().then(() => this.becomeGitspace(config));
        });
        json(200, { claimed: config.gitspace.uid, instance: this.facts.instance });
      },
      (e: unknown) => {
        this.claimed = false;
        if (!res.headersSent && !res.destroyed) json(413, { error: (e as Error).message });
      },
    );
  }

  async start(): Promise<void> {
    const listen = { ...this.facts.listen, address: listenAddress(this.facts.listen.address) };
    this.http = createServer((req, res) => {
      this.handle(req, res);
    });
    this.http.headersTimeout = 10_000;
    this.http.requestTimeout = 15_000;
    await new Promise<void>((resolve, reject) => {
      this.http?.once('error', reject);
      this.http?.listen(listen.httpPort, listen.address, resolve);
    });
    log('waiting to be claimed', { instance: this.facts.instance, address: listen.address, httpPort: listen.httpPort, ...(this.facts.pool ? { pool: this.facts.pool } : {}) });
  }

  async stop(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    if (!http) return;
    await new Promise<void>((r) => {
      http.closeAllConnections();
      http.close(() => {
        r();
      });
    });
  }
}
