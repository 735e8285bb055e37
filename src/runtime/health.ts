// /healthz, /readyz and /metrics on one small HTTP server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthChecks {
  /** The process is alive and not wedged. */
  healthy(): boolean;
  /** Ready to do its job (caches synced); standby replicas are ready too. */
  ready(): boolean;
}

export class HealthServer {
  private server: Server | undefined;

  private readonly checks: HealthChecks;
  private readonly registry: Registry;

  constructor(checks: HealthChecks, registry: Registry) {
    this.checks = checks;
    this.registry = registry;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const answer = (ok: boolean) => {
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ok ? 'ok' : 'not ready');
      };
      if (path === '/healthz' || path === '/livez') answer(this.checks.healthy());
      else if (path === '/readyz') answer(this.checks.ready());
      else if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          () => {
            res.writeHead(500);
            res.end('metrics unavailable');
          },
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
      }
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => { r(); }));
  }
}
