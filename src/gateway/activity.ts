// Tells each agent that its Gitspace is in use, batched: traffic through the gateway marks a
// Gitspace, and at most once per interval one POST /activity goes to its agent — never one call per
// request. The agent's last-activity time is what the runner's idle auto-stop reads.
import { request } from 'node:http';
import { AGENT_ACTIVITY_PATH, SECRET_HEADER, type ActivitySource } from '../api/index.ts';
import type { Target } from './routes.ts';

export class ActivityReporter {
  private readonly dirty = new Map<string, { t: Target; source: ActivitySource }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  /** Reports sent (for tests and metrics). */
  sent = 0;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** Marks use of a Gitspace: the browser IDE (a host or path route), a forwarded port, or SSH. */
  touch(t: Target, source: ActivitySource): void {
    if (t.upstream && t.secret) this.dirty.set(t.key, { t, source });
  }

  start(): void {
    this.timer = setInterval(() => {
      void this.flush();
    }, this.intervalMs);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    const batch = [...this.dirty.values()];
    this.dirty.clear();
    await Promise.all(batch.map((b) => this.report(b.t, b.source)));
  }

  private report(t: Target, source: ActivitySource): Promise<void> {
    const up = t.upstream;
    if (!up || !t.secret) return Promise.resolve();
    return new Promise((resolve) => {
      const req = request({ host: up.host, port: up.port, method: 'POST', path: `${AGENT_ACTIVITY_PATH}?source=${source}`, headers: { [SECRET_HEADER]: t.secret, 'content-length': '0' }, timeout: 5_000 }, (res) => {
        res.resume();
        this.sent++;
        resolve();
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => {
        resolve();
      });
      req.end();
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
