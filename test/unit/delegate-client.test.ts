// The delegate's calls to a control plane are bounded: one that drips its answer is cut at the
// deadline, one that streams without end at the size cap; either is an error the delegate retries,
// not a stuck worker or a growing heap.
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ControlPlaneClient } from '../../src/controllers/delegate/client.ts';

describe('delegate client limits', () => {
  let server: Server;
  let url: string;
  const timers = new Set<NodeJS.Timeout>();

  before(async () => {
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url?.includes('/heartbeat')) {
        // drip: a byte a second, for ever
        const t = setInterval(() => res.write(' '), 1000);
        timers.add(t);
        res.on('close', () => { clearInterval(t); });
        return;
      }
      // flood: 1 MiB chunks as fast as the client takes them
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const pump = () => {
        while (res.write(chunk)) { /* until the socket pushes back */ }
        res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  });

  after(async () => {
    for (const t of timers) clearInterval(t);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => { r(); }));
  });

  it('gives up on an answer that drips, at the deadline', async () => {
    const c = new ControlPlaneClient(url, 'token', { timeoutMs: 700 });
    const t0 = Date.now();
    const err = await c.heartbeat('d').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.include('no answer within 0.7 s');
    expect(Date.now() - t0).to.be.below(3_000);
  });

  it('stops reading an answer past the size cap', async () => {
    const c = new ControlPlaneClient(url, 'token', { timeoutMs: 20_000 });
    const before = process.memoryUsage().rss;
    const err = await c.believed().then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.include('the answer exceeds 8 MiB');
    expect(process.memoryUsage().rss - before).to.be.below(64 << 20);
  });
});
