// When the developer last used the Gitspace, and how: what idle auto-stop reads from /v1/activity
// and /healthz (status.lastActivity says "idle since 10:42 (ssh)").
import type { IncomingMessage } from 'node:http';
import type { ActivitySource } from '../api/agent.ts';

export class Activity {
  private last = new Date();
  private how: ActivitySource = 'api';

  touch(source: ActivitySource): void {
    this.last = new Date();
    this.how = source;
  }

  /** Use of a forwarded port counts when the gateway names a user (a public port's visitors are anonymous). */
  touchBy(req: IncomingMessage): void {
    if (req.headers['x-gitspaces-user']) this.touch('port');
  }

  get lastActivityTime(): string {
    return this.last.toISOString();
  }

  get lastActivitySource(): ActivitySource {
    return this.how;
  }
}
