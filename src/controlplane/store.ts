// The reference control plane's state, in SQLite through Node's built-in `node:sqlite` (no native
// module to build, one file, survives restarts; WAL so readers never wait on the writer).
// Gitspaces as users asked for them, the tasks that carry those wishes to a delegate, the
// delegates that registered, the signing key of the access tokens it issues, and the SHA-256 of
// each refresh token (never the token itself) with the chain it belongs to.
import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';

export type DesiredState = 'Running' | 'Stopped';
export type TaskKind = 'apply' | 'start' | 'stop' | 'delete';
export type Outcome = 'succeeded' | 'failed';

export interface GitspaceSpecInput {
  infra: string;
  repository: { url: string; ref?: string };
  ide?: { type: string; product?: string };
  machineType: string;
  sshPublicKeys?: string[];
  /** Ports to publish through the gateway (the Gitspace's spec.ports). */
  ports?: { port: number; name?: string; visibility?: string; protocol?: string }[];
}

export interface GitspaceRecord {
  id: string;
  owner: string;
  spec: GitspaceSpecInput;
  state: DesiredState;
  deleted: boolean;
  revision: number;
  /** The last status report from the delegate. */
  status?: Record<string, unknown>;
  createdAt: string;
}

export interface TaskRecord {
  id: string;
  gitspaceId: string;
  kind: TaskKind;
  revision: number;
  state: 'pending' | 'acked' | 'done';
  outcome?: Outcome;
  reason?: string;
  message?: string;
  createdAt: string;
  ackedAt?: string;
  doneAt?: string;
}

/** A refresh token as stored: its SHA-256 (hex), never the token. */
export interface RefreshTokenRecord {
  hash: string;
  /** Every token rotated from the same first one shares its chain: reuse or revocation ends them all. */
  chain: string;
  subject: string;
  gitspaceId: string;
  issuedAt: string;
  expiresAt: string;
  usedAt?: string;
  revokedAt?: string;
}

type Row = Record<string, string | number | null>;

const str = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : undefined);

export class Store {
  readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();

  /** A prepared statement, prepared once per SQL text (the task poll runs these constantly). */
  private stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  constructor(path: string) {
    // It holds the token signing key: readable by its owner only (SQLite's WAL files copy the mode).
    if (path !== ':memory:') {
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    this.db = new DatabaseSync(path);
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS gitspaces (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0, revision INTEGER NOT NULL, status TEXT, created_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, gitspace_id TEXT NOT NULL, kind TEXT NOT NULL, revision INTEGER NOT NULL,
        state TEXT NOT NULL, outcome TEXT, reason TEXT, message TEXT,
        created_at TEXT NOT NULL, acked_at TEXT, done_at TEXT);
      CREATE INDEX IF NOT EXISTS tasks_open ON tasks (state, created_at);
      CREATE TABLE IF NOT EXISTS delegates (name TEXT PRIMARY KEY, version TEXT, infras TEXT, last_seen TEXT);
      CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS refresh_tokens (
        hash TEXT PRIMARY KEY, chain TEXT NOT NULL, subject TEXT NOT NULL, gitspace_id TEXT NOT NULL,
        issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_at TEXT, revoked_at TEXT);
      CREATE INDEX IF NOT EXISTS refresh_tokens_chain ON refresh_tokens (chain);
      CREATE INDEX IF NOT EXISTS refresh_tokens_owner ON refresh_tokens (subject, gitspace_id);
    `);
  }

  close(): void {
    this.db.close();
  }

  setting(key: string): string | undefined {
    return str((this.stmt('SELECT value FROM settings WHERE key = ?').get(key) as Row | undefined)?.value);
  }

  setSetting(key: string, value: string): void {
    this.stmt('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  private gitspace(r: Row): GitspaceRecord {
    return {
      id: str(r.id) ?? '', owner: str(r.owner) ?? '', spec: JSON.parse(str(r.spec) ?? '{}') as GitspaceSpecInput,
      state: (str(r.state) ?? 'Running') as DesiredState, deleted: Number(r.deleted) === 1, revision: Number(r.revision),
      ...(r.status ? { status: JSON.parse(str(r.status) ?? '{}') as Record<string, unknown> } : {}), createdAt: str(r.created_at) ?? '',
    };
  }

  private task(r: Row): TaskRecord {
    return {
      id: str(r.id) ?? '', gitspaceId: str(r.gitspace_id) ?? '', kind: (str(r.kind) ?? 'apply') as TaskKind, revision: Number(r.revision),
      state: (str(r.state) ?? 'pending') as TaskRecord['state'], createdAt: str(r.created_at) ?? '',
      ...(r.outcome ? { outcome: str(r.outcome) as Outcome } : {}), ...(r.reason ? { reason: str(r.reason) } : {}), ...(r.message ? { message: str(r.message) } : {}),
      ...(r.acked_at ? { ackedAt: str(r.acked_at) } : {}), ...(r.done_at ? { doneAt: str(r.done_at) } : {}),
    };
  }

  getGitspace(id: string): GitspaceRecord | undefined {
    const r = this.stmt('SELECT * FROM gitspaces WHERE id = ?').get(id) as Row | undefined;
    return r ? this.gitspace(r) : undefined;
  }

  listGitspaces(owner?: string): GitspaceRecord[] {
    const rows = (owner
      ? this.stmt('SELECT * FROM gitspaces WHERE owner = ? AND deleted = 0 ORDER BY created_at').all(owner)
      : this.stmt('SELECT * FROM gitspaces ORDER BY created_at').all()) as Row[];
    return rows.map((r) => this.gitspace(r));
  }

  /** A change to a Gitspace and the task that carries it, in one transaction. */
  change(id: string, kind: TaskKind, apply: (g: GitspaceRecord | undefined) => GitspaceRecord): { gitspace: GitspaceRecord; task: TaskRecord } {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const before = this.getGitspace(id);
      const g = apply(before);
      g.revision = (before?.revision ?? 0) + 1;
      this.stmt(`INSERT INTO gitspaces (id, owner, spec, state, deleted, revision, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, state = excluded.state, deleted = excluded.deleted, revision = excluded.revision`)
        .run(g.id, g.owner, JSON.stringify(g.spec), g.state, g.deleted ? 1 : 0, g.revision, g.status ? JSON.stringify(g.status) : null, g.createdAt);
      const task: TaskRecord = { id: `t-${randomUUID()}`, gitspaceId: id, kind, revision: g.revision, state: 'pending', createdAt: new Date().toISOString() };
      // A newer wish supersedes open tasks for the same Gitspace: only the latest is delivered.
      this.stmt("UPDATE tasks SET state = 'done', outcome = 'failed', reason = 'Superseded', message = 'a newer change replaced this task', done_at = ? WHERE gitspace_id = ? AND state != 'done'").run(task.createdAt, id);
      this.stmt('INSERT INTO tasks (id, gitspace_id, kind, revision, state, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(task.id, id, kind, task.revision, 'pending', task.createdAt);
      this.db.exec('COMMIT');
      return { gitspace: g, task };
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  getTask(id: string): TaskRecord | undefined {
    const r = this.stmt('SELECT * FROM tasks WHERE id = ?').get(id) as Row | undefined;
    return r ? this.task(r) : undefined;
  }

  /** Tasks to offer: pending ones, and acknowledged ones without a result for `redeliverMs`. */
  openTasks(redeliverMs: number, limit = 500): TaskRecord[] {
    const stale = new Date(Date.now() - redeliverMs).toISOString();
    const rows = this.stmt("SELECT * FROM tasks WHERE state = 'pending' OR (state = 'acked' AND acked_at < ?) ORDER BY created_at LIMIT ?").all(stale, limit) as Row[];
    return rows.map((r) => this.task(r));
  }

  /** The task still open for a Gitspace (at most one: a newer one supersedes older ones). */
  openTaskOf(gitspaceId: string): TaskRecord | undefined {
    const r = this.stmt("SELECT * FROM tasks WHERE gitspace_id = ? AND state != 'done' ORDER BY created_at DESC LIMIT 1").get(gitspaceId) as Row | undefined;
    return r ? this.task(r) : undefined;
  }

  ack(id: string): boolean {
    const r = this.stmt("UPDATE tasks SET state = 'acked', acked_at = ? WHERE id = ? AND state != 'done'").run(new Date().toISOString(), id);
    return Number(r.changes) > 0 || this.getTask(id) !== undefined;
  }

  /** The first result wins; returns the task as it now is, or undefined if unknown. */
  result(id: string, outcome: Outcome, reason?: string, message?: string): TaskRecord | undefined {
    this.stmt("UPDATE tasks SET state = 'done', outcome = ?, reason = ?, message = ?, done_at = ? WHERE id = ? AND state != 'done'")
      .run(outcome, reason ?? null, message ?? null, new Date().toISOString(), id);
    return this.getTask(id);
  }

  setStatus(id: string, status: Record<string, unknown>): void {
    this.stmt('UPDATE gitspaces SET status = ? WHERE id = ?').run(JSON.stringify(status), id);
  }

  /** Forgets a deleted Gitspace once its delete task succeeded, and its refresh tokens (a new Gitspace may reuse the id). */
  purge(id: string): void {
    if (Number(this.stmt('DELETE FROM gitspaces WHERE id = ? AND deleted = 1').run(id).changes) > 0) {
      this.stmt('DELETE FROM refresh_tokens WHERE gitspace_id = ?').run(id);
    }
  }

  refreshToken(hash: string): RefreshTokenRecord | undefined {
    const r = this.stmt('SELECT * FROM refresh_tokens WHERE hash = ?').get(hash) as Row | undefined;
    if (!r) return undefined;
    return {
      hash: str(r.hash) ?? '', chain: str(r.chain) ?? '', subject: str(r.subject) ?? '', gitspaceId: str(r.gitspace_id) ?? '',
      issuedAt: str(r.issued_at) ?? '', expiresAt: str(r.expires_at) ?? '',
      ...(r.used_at ? { usedAt: str(r.used_at) } : {}), ...(r.revoked_at ? { revokedAt: str(r.revoked_at) } : {}),
    };
  }

  /**
   * Stores a new refresh token; with `consumes`, only if that one is still unused and unrevoked
   * (marking it used), in one transaction — so of two racing refreshes with one token, one wins.
   * Rows that expired before `prune` go; live tokens of the same user and Gitspace beyond `keep`
   * (the newest) are revoked, so a client that never refreshes cannot grow the table without end.
   */
  addRefreshToken(r: RefreshTokenRecord, o: { consumes?: string; prune: string; keep: number }): boolean {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      if (o.consumes !== undefined && Number(this.stmt('UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL').run(r.issuedAt, o.consumes).changes) === 0) {
        this.db.exec('ROLLBACK');
        return false;
      }
      this.stmt('DELETE FROM refresh_tokens WHERE expires_at < ?').run(o.prune);
      this.stmt('INSERT INTO refresh_tokens (hash, chain, subject, gitspace_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(r.hash, r.chain, r.subject, r.gitspaceId, r.issuedAt, r.expiresAt);
      this.stmt(`UPDATE refresh_tokens SET revoked_at = ? WHERE subject = ? AND gitspace_id = ? AND used_at IS NULL AND revoked_at IS NULL
        AND rowid NOT IN (SELECT rowid FROM refresh_tokens WHERE subject = ? AND gitspace_id = ? AND used_at IS NULL AND revoked_at IS NULL ORDER BY rowid DESC LIMIT ?)`)
        .run(r.issuedAt, r.subject, r.gitspaceId, r.subject, r.gitspaceId, o.keep);
      this.db.exec('COMMIT');
      return true;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /** Revokes every token of a chain that is not already revoked; returns how many. */
  revokeRefreshChain(chain: string, at: string): number {
    return Number(this.stmt('UPDATE refresh_tokens SET revoked_at = ? WHERE chain = ? AND revoked_at IS NULL').run(at, chain).changes);
  }

  registerDelegate(name: string, version: string, infras: unknown): void {
    this.stmt('INSERT INTO delegates (name, version, infras, last_seen) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version, infras = excluded.infras, last_seen = excluded.last_seen')
      .run(name, version, JSON.stringify(infras), new Date().toISOString());
  }

  heartbeat(name: string): boolean {
    return Number(this.stmt('UPDATE delegates SET last_seen = ? WHERE name = ?').run(new Date().toISOString(), name).changes) > 0;
  }

  delegates(): { name: string; version: string; infras: unknown; lastSeen: string }[] {
    return (this.stmt('SELECT * FROM delegates').all() as Row[]).map((r) => ({ name: str(r.name) ?? '', version: str(r.version) ?? '', infras: JSON.parse(str(r.infras) ?? '[]') as unknown, lastSeen: str(r.last_seen) ?? '' }));
  }
}
