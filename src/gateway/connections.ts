// Upgraded connections (WebSocket, SSH) while they last: counted (a gauge), closed at a session's
// end — logout or a refresh the issuer refused, on whichever replica they are — and at drain,
// written to the audit trail with their bytes and how they ended. Also who used which Gitspace
// lately, for the active-sessions gauge.
import type { Duplex } from 'node:stream';
import { Gauge, type Registry } from 'prom-client';
import type { Audit } from './audit.ts';
import type { Identity } from './auth.ts';
import type { Match } from './routes.ts';
import type { BridgeHooks } from './ssh-bridge.ts';

/** A session counts as active on a Gitspace this long after its last request or byte. */
const ACTIVE_MS = 5 * 60_000;
/** How often one connection marks its Gitspace as used, at most. */
const USE_MARK_MS = 1_000;

interface Open {
  session: string | undefined;
  close: (reason: string) => void;
}

export interface ConnectionsOptions {
  audit: Audit;
  registry: Registry;
  /** Whether a single sign-on session (by id) may still carry traffic. */
  sessionAlive: (id: string) => boolean;
  /** A session has a connection open (it is refreshed ahead of time). */
  sessionInUse: (id: string) => void;
  /** Client bytes: use of the Gitspace (idle auto-stop). */
  onUse: (m: Match, kind: 'websocket' | 'ssh') => void;
}

export class Connections {
  private readonly o: ConnectionsOptions;
  private readonly open = new Set<Open>();
  private readonly sockets = new Set<Duplex>();
  private readonly gauge: Gauge;
  /** Gitspace key → session key (a session id, or token:<user>) → last use. */
  private readonly recent = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(o: ConnectionsOptions) {
    this.o = o;
    const registers = [o.registry];
    this.gauge = new Gauge({ name: 'gitspaces_gateway_websockets_active', help: 'Upgraded connections (WebSocket, SSH) open now', registers });
    const recent = this.recent;
    new Gauge({
      name: 'gitspaces_gateway_sessions_active', help: 'Sessions (single sign-on sessions, or users with tokens) that used a Gitspace through this replica in the last 5 minutes', labelNames: ['gitspace'], registers,
      collect() {
        this.reset();
        const since = Date.now() - ACTIVE_MS;
        for (const [gitspace, sessions] of recent) {
          for (const [k, at] of sessions) if (at < since) sessions.delete(k);
          if (sessions.size) this.set({ gitspace }, sessions.size);
          else recent.delete(gitspace);
        }
      },
    });
  }

  /** Closes connections whose session has ended (checked every few seconds, and at once on an end seen here). */
  start(intervalMs = 5_000): void {
    this.timer = setInterval(() => {
      this.check();
    }, intervalMs);
    this.timer.unref();
  }

  check(): void {
    for (const c of this.open) {
      if (c.session === undefined) continue;
      if (this.o.sessionAlive(c.session)) this.o.sessionInUse(c.session);
      else c.close('session_ended');
    }
  }

  /** A request or connection of `id` used this Gitspace. */
  seen(m: Match, id: Identity): void {
    let s = this.recent.get(m.target.key);
    if (!s) {
      if (this.recent.size > 100_000) this.recent.clear();
      s = new Map();
      this.recent.set(m.target.key, s);
    }
    if (s.size < 10_000) s.set(id.session ?? `token:${id.sub}`, Date.now());
  }

  get size(): number {
    return this.open.size;
  }

  /** Hooks for one upgraded connection, which write its audit line when it ends. */
  hooks(socket: Duplex, kind: 'websocket' | 'ssh', m: Match, id: Identity, client: string, idleMs: number, anonymous: boolean): BridgeHooks {
    const started = new Date();
    let bytesIn = 0;
    let bytesOut = 0;
    let entry: Open | undefined;
    // Use is marked at most once a second per connection, not per chunk: the marks are read by the
    // minute (idle stop) and over 5 minutes (sessions_active), and a busy terminal sends thousands.
    let usedAt = 0;
    return {
      idleMs,
      onOpen: (close) => {
        entry = { session: id.session, close };
        this.open.add(entry);
        this.sockets.add(socket);
        this.gauge.inc();
      },
      onClose: (reason) => {
        if (!entry || !this.open.delete(entry)) return;
        this.sockets.delete(socket);
        this.gauge.dec();
        this.o.audit.write('connection', {
          kind, ...(id.session ? { session: id.session } : {}), user: anonymous ? '' : id.sub, gitspace: m.target.key, hostKind: m.kind,
          ...(m.port ? { port: m.port.number } : {}), client, start: started.toISOString(), end: new Date().toISOString(), bytesIn, bytesOut, result: reason,
        });
      },
      onData: (n) => {
        bytesIn += n;
        if (anonymous) return;
        const now = Date.now();
        if (now - usedAt < USE_MARK_MS) return;
        usedAt = now;
        this.o.onUse(m, kind);
        this.seen(m, id);
      },
      onDataOut: (n) => {
        bytesOut += n;
      },
    };
  }

  /** A connection refused before it was joined (no or a bad credential, not the owner's, …). */
  refused(kind: 'websocket' | 'ssh', m: Match, client: string, status: number): void {
    const now = new Date().toISOString();
    this.o.audit.write('connection', { kind, user: '', gitspace: m.target.key, hostKind: m.kind, ...(m.port ? { port: m.port.number } : {}), client, start: now, end: now, bytesIn: 0, bytesOut: 0, result: `refused_${String(status)}` });
  }

  /** Ends every connection of a session (it was ended here or on another replica). */
  endSession(id: string): void {
    for (const c of this.open) if (c.session === id) c.close('session_ended');
  }

  /** At drain: every connection, last. */
  closeAll(): void {
    clearInterval(this.timer);
    for (const c of [...this.open]) c.close('gateway_stopped');
    for (const s of this.sockets) s.destroy();
  }
}
