// The gateway's audit trail: one JSON line per event on stdout, apart from the log (which goes to
// stderr), in the schema README "Audit" documents — who signed in, which Gitspace a session
// opened, each WebSocket / SSH connection with its bytes and how it ended, and each session's end.
// Values are the gateway's own findings (the client address as seen through trusted proxies, the
// user from a verified token), never a header a client could have written.

export const AUDIT_SCHEMA = 'gitspaces.dev/audit/v1';

export type AuditEvent = 'login' | 'session.open' | 'session.end' | 'logout' | 'connection';

export interface ConnectionLine {
  kind: 'websocket' | 'ssh';
  /** The session's id (a hash of the cookie, never the cookie) or undefined for a Bearer token. */
  session?: string;
  user: string;
  gitspace: string;
  hostKind: 'host' | 'path' | 'port';
  port?: number;
  client: string;
  start: string;
  end: string;
  bytesIn: number;
  bytesOut: number;
  result: string;
}

export class Audit {
  private readonly sink: (line: string) => void;

  constructor(sink: (line: string) => void = (l) => process.stdout.write(l)) {
    this.sink = sink;
  }

  write(event: AuditEvent, fields: Record<string, unknown>): void {
    this.sink(`${JSON.stringify({ audit: AUDIT_SCHEMA, event, time: new Date().toISOString(), ...fields })}\n`);
  }
}
