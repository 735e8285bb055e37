// Gitspaces whose "VM" is a test double: the test writes the Gitspace's status itself (no operator
// serves their infra) and a small agent on that address records what reaches it. It checks the hop
// token the way the real agent does (against HMAC(hop key, UID)), answers HTTP with its own name,
// accepts WebSockets (echo), and for `/v1/ssh` echoes, floods or never reads, so tests can see what
// the gateway dials, forwards and buffers.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { AGENT_HTTP_PORT, HOP_KEY_FIELD, HOP_KEY_SECRET, hopToken, PORT_HEADER, SECRET_HEADER, type Gitspace } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import { k8s } from './gitspaces.ts';
import { statusMessage, type Manifest } from './resources.ts';

export interface Seen {
  method: string;
  path: string;
  port?: string;
  upgrade?: string;
  origin?: string;
}

export class FakeAgent {
  readonly address: string;
  readonly seen: Seen[] = [];
  /** What `/v1/ssh` does once upgraded. */
  ssh: 'echo' | 'flood' | 'sink' = 'echo';
  /** Bytes the flooding agent got its socket to accept. */
  flooded = 0;
  /** The token it accepts (set once the Gitspace exists and the key is known). */
  token = '';
  private readonly server: Server;
  private readonly sockets = new Set<Socket | Duplex>();
  private readonly wss = new WebSocketServer({ noServer: true });

  private constructor(address: string) {
    this.address = address;
    this.server = createServer((req, res) => {
      const s = this.record(req);
      if (!this.token || req.headers[SECRET_HEADER] !== this.token) {
        res.writeHead(401).end();
        return;
      }
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`fake agent ${this.address} ${s.method} ${s.path} port=${s.port ?? '-'}\n`);
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      this.record(req);
      if (!this.token || req.headers[SECRET_HEADER] !== this.token) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      if (req.url !== '/v1/ssh') {
        this.wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d: Buffer) => { ws.send(d); }));
        return;
      }
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: gitspaces-ssh\r\nConnection: Upgrade\r\n\r\n');
      if (this.ssh === 'echo') socket.pipe(socket);
      else if (this.ssh === 'sink') socket.pause();
      else this.flood(socket);
    });
  }

  static async start(address: string): Promise<FakeAgent> {
    const a = new FakeAgent(address);
    await new Promise<void>((resolve) => a.server.listen(AGENT_HTTP_PORT, address, resolve));
    return a;
  }

  private record(req: IncomingMessage): Seen {
    const s: Seen = { method: req.method ?? '', path: req.url ?? '' };
    const port = req.headers[PORT_HEADER];
    if (typeof port === 'string') s.port = port;
    if (typeof req.headers.upgrade === 'string') s.upgrade = req.headers.upgrade;
    if (typeof req.headers.origin === 'string') s.origin = req.headers.origin;
    this.seen.push(s);
    return s;
  }

  /** As much as the socket takes, up to 256 MiB, waiting for 'drain' like a well-behaved sender. */
  private flood(socket: Duplex): void {
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const pump = () => {
      while (!socket.destroyed && this.flooded < 256 << 20) {
        this.flooded += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.server.close(() => { resolve(); }));
  }
}

/** The hop key Secret the operator would create, made by the test in `namespace`. */
export async function createHopKey(namespace: string, key: string): Promise<void> {
  const r = await testCluster().request('POST', `/api/v1/namespaces/${namespace}/secrets`, {
    body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: HOP_KEY_SECRET, namespace }, data: { [HOP_KEY_FIELD]: Buffer.from(key).toString('base64') } },
  });
  if (r.status !== 201) throw new Error(statusMessage(r));
}

/** Creates a Gitspace and writes its status as a runner (or anyone with gitspaces/status) could. */
export async function gitspaceWithStatus(m: Manifest, status: NonNullable<Gitspace['status']>): Promise<Gitspace> {
  await k8s.apply(m);
  const r = await testCluster().request('PATCH', `/apis/gitspaces.dev/v1alpha1/namespaces/${m.metadata.namespace ?? 'default'}/gitspaces/${m.metadata.name}/status`, {
    body: { status }, headers: { 'content-type': 'application/merge-patch+json' },
  });
  if (r.status !== 200) throw new Error(statusMessage(r));
  return r.json as Gitspace;
}

export function tokenFor(key: string, g: Gitspace): string {
  return hopToken(key, g.metadata.uid ?? '');
}
