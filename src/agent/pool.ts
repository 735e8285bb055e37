// The agent of a warm-pool VM: booted, listening, no Gitspace yet. It answers /healthz with
// state "pooled" and accepts one claim (POST /v1/claim with the pool secret and the Gitspace's
// AgentConfig). The claim is written to agent.json (so the VM's startup script resumes as that
// Gitspace after a stop/start) and the normal agent takes over the same port.
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { CLAIM_PATH, SECRET_HEADER, type AgentConfig, type AgentHealth, type PoolBootConfig } from '../api/agent.ts';
import { listenAddress, log } from './log.ts';
import { secretMatches } from './secret.ts';

const MAX_CLAIM_BYTES = 1 << 20;

function pooledHealth(): AgentHealth {
  return {
    state: 'pooled', restart: false, steps: [], ide: { type: '', ready: false }, checkout: '', forwardPorts: [],
    devcontainer: { found: false, notApplied: [], containerBuild: 'skipped' }, lastActivityTime: new Date().toISOString(),
  };
}

/** The fields a claim must carry to be usable; returns what is wrong, or undefined. */
function claimProblem(c: Partial<AgentConfig>): string | undefined {
  if (typeof c.secret !== 'string' || c.secret.length < 16) return 'secret is missing or too short';
  if (typeof c.gitspace?.uid !== 'string' || !c.gitspace.uid) return 'gitspace.uid is missing';
  if (typeof c.repository?.url !== 'string' || !c.repository.url) return 'repository.url is missing';
  if (!Array.isArray(c.sshPublicKeys) || !Array.isArray(c.env) || !Array.isArray(c.ports)) return 'sshPublicKeys, env and ports must be arrays';
  if (typeof c.devcontainerPath !== 'string' || typeof c.ide?.type !== 'string') return 'devcontainerPath and ide.type are required';
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_CLAIM_BYTES) throw new Error('claim too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class PooledAgent {
  private readonly boot: PoolBootConfig;
  private readonly root: string;
  private readonly becomeGitspace: (agentPath: string) => Promise<void>;
  private http: Server | undefined;
  private claimed = false;

  constructor(boot: PoolBootConfig, root: string, becomeGitspace: (agentPath: string) => Promise<void>) {
    this.boot = boot;
    this.root = root;
    this.becomeGitspace = becomeGitspace;
  }

  async start(): Promise<void> {
    const listen = { ...this.boot.listen, address: listenAddress(this.boot.listen.address) };
    this.http = createServer((req, res) => {
      const json = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (!secretMatches(this.boot.pool.secret, req.headers[SECRET_HEADER])) {
        json(401, { error: 'unauthorised' });
        return;
      }
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        json(200, pooledHealth());
        return;
      }
      if (path !== CLAIM_PATH || req.method !== 'POST') {
        json(404, { error: 'not found' });
        return;
      }
      if (this.claimed) {
        json(409, { error: 'already claimed' });
        return;
      }
      void readBody(req).then(
        (text) => {
          let claim: Partial<AgentConfig>;
          try {
            claim = JSON.parse(text) as Partial<AgentConfig>;
          } catch {
            json(400, { error: 'the claim is not JSON' });
            return;
          }
          const problem = claimProblem(claim);
          if (problem) {
            json(400, { error: problem });
            return;
          }
          this.claimed = true;
          // Where this VM listens and its user's home are the VM's, not the claimant's to choose.
          const config = { ...(claim as AgentConfig), listen: this.boot.listen, home: this.boot.home };
          const path = join(this.root, 'agent.json');
          writeFileSync(`${path}.tmp`, JSON.stringify(config), { mode: 0o600 });
          renameSync(`${path}.tmp`, path);
          log('claimed', { gitspace: `${config.gitspace.namespace}/${config.gitspace.name}`, uid: config.gitspace.uid });
          res.once('finish', () => {
            void this.stop().then(() => this.becomeGitspace(path));
          });
          json(200, { claimed: config.gitspace.uid });
        },
        (e: unknown) => {
          json(413, { error: (e as Error).message });
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.http?.once('error', reject);
      this.http?.listen(listen.httpPort, listen.address, resolve);
    });
    log('pool agent listening', { address: listen.address, httpPort: listen.httpPort, infra: this.boot.pool.infra, machineType: this.boot.pool.machineType });
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
