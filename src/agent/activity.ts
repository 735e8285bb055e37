// When the developer last used the Gitspace: what idle auto-stop reads from /v1/activity.
import type { IncomingMessage } from 'node:http';

export class Activity {
  private last = new Date();

  touch(): void {
    this.last = new Date();
  }

  /** Use of a forwarded port counts when the gateway names a user (a public port's visitors are anonymous). */
  touchBy(req: IncomingMessage): void {
    if (req.headers['x-gitspaces-user']) this.touch();
  }

  get lastActivityTime(): string {
    return this.last.toISOString();
  }
}
