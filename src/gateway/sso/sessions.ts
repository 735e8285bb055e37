// Browser sessions after a single sign-on, shared by every gateway replica: one ConfigMap each in
// the gateway's namespace (labelled, watched), named after the SHA-256 of the session id — the
// cookie's value, which is never stored — and holding the user, their groups, when the session
// must be refreshed and when it ends; the refresh and ID tokens are sealed with the gateway's key,
// so a reader of ConfigMaps learns who is signed in but cannot act as them. Deleting one (logout,
// a failed refresh, `kubectl delete`) ends that session on every replica at once. A refresh is
// leased first (a write that only one replica's resourceVersion wins), so two replicas never spend
// the same rotating refresh token.
import { createHash, randomBytes } from 'node:crypto';
import { CONFIG_MAPS, SESSION_LABEL, SESSION_PREFIX } from '../../api/index.ts';
import { Informer } from '../../runtime/informer.ts';
import { KubeError, type KubeClient, type KubeObject } from '../../runtime/kube.ts';

/** A session past its refresh time is still honoured this long (half its tokens' lifetime for short ones) while a refresh is under way. */
export const REFRESH_GRACE_MS = 60_000;
/** Sessions are refreshed this long before they go stale, at most (a third of the tokens' lifetime for short ones). */
export const REFRESH_AHEAD_MS = 30_000;

/** When a session that was not refreshed stops being honoured. */
export function staleAt(s: Pick<SessionRecord, 'freshUntil' | 'refreshedAt'>): number {
  return s.freshUntil + Math.min(REFRESH_GRACE_MS, (s.freshUntil - s.refreshedAt) / 2);
}

/** When a session's refresh is due. */
export function refreshDue(s: Pick<SessionRecord, 'freshUntil' | 'refreshedAt'>): number {
  return s.freshUntil - Math.min(REFRESH_AHEAD_MS, (s.freshUntil - s.refreshedAt) / 3);
}
/** Sessions one user may hold at once; the oldest go first. */
export const MAX_SESSIONS_PER_USER = 20;

export interface SessionRecord {
  infra: string;
  /** The usernameClaim's value: what owner and sharedWith name. */
  user: string;
  groups: string[];
  /** The issuer's sub. */
  subject: string;
  /** The client's address at login. */
  client: string;
  createdAt: number;
  /** The session ends then, however often it is refreshed. */
  expiresAt: number;
  /** The access / ID token's expiry: a refresh is due before then. */
  freshUntil: number;
  /** When the tokens were last issued (refreshes are due at two thirds of their lifetime, 30 s before at most). */
  refreshedAt: number;
  /** Sealed { refreshToken?, idToken? }. */
  tokens: string;
  refreshing?: { by: string; until: number };
}

export interface Session extends SessionRecord {
  /** The hash the ConfigMap is named after (what audit lines name the session by). */
  id: string;
  resourceVersion: string;
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** A session id: 256 random bits, base64url (what the cookie holds). */
export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function isSessionId(s: string): boolean {
  return /^[\w-]{43}$/.test(s);
}

export function sessionHash(sid: string): string {
  return createHash('sha256').update(sid).digest('hex').slice(0, 40);
}

function parse(cm: ConfigMap | undefined): Session | undefined {
  const raw = cm?.data?.session;
  const name = cm?.metadata.name ?? '';
  if (!raw || !name.startsWith(SESSION_PREFIX)) return undefined;
  try {
    return { ...(JSON.parse(raw) as SessionRecord), id: name.slice(SESSION_PREFIX.length), resourceVersion: cm.metadata.resourceVersion ?? '' };
  } catch {
    return undefined;
  }
}

export type EndReason = 'logout' | 'expired' | 'refresh_failed' | 'revoked' | 'replaced';

export class SessionStore {
  readonly informer: Informer<ConfigMap>;
  private readonly client: KubeClient;
  private readonly namespace: string;
  /** Written by this replica and maybe not yet seen by its watch. */
  private readonly recent = new Map<string, Session>();
  /** Called once per session this replica sees end (deleted here or elsewhere). */
  onEnded: (s: Session) => void = () => undefined;

  constructor(client: KubeClient, namespace: string, onError: (e: unknown) => void) {
    this.client = client;
    this.namespace = namespace;
    this.informer = new Informer<ConfigMap>(client, CONFIG_MAPS, { namespace, labelSelector: `${SESSION_LABEL}=true`, onError });
    this.informer.on({
      delete: (cm) => {
        const s = parse(cm);
        if (!s) return;
        this.recent.delete(s.id);
        this.onEnded(s);
      },
    });
  }

  private key(id: string): string {
    return `${this.namespace}/${SESSION_PREFIX}${id}`;
  }

  /** Parsed sessions by object, so a request does not parse JSON (the cache swaps objects on change). */
  private readonly parsed = new WeakMap<ConfigMap, Session | undefined>();

  private parsedOf(cm: ConfigMap | undefined): Session | undefined {
    if (!cm) return undefined;
    if (!this.parsed.has(cm)) this.parsed.set(cm, parse(cm));
    return this.parsed.get(cm);
  }

  /** The session by its hash, from the watch (or this replica's own recent writes). */
  byHash(id: string): Session | undefined {
    const cached = this.parsedOf(this.informer.get(this.key(id)));
    const mine = this.recent.get(id);
    if (mine && (!cached || Number(cached.resourceVersion) < Number(mine.resourceVersion))) return mine;
    if (cached) this.recent.delete(id);
    return cached;
  }

  /**
   * The session a cookie names. One another replica created a moment ago may not have reached
   * this one's watch yet: it is read once from the API server.
   */
  async get(sid: string): Promise<Session | undefined> {
    if (!isSessionId(sid)) return undefined;
    const id = sessionHash(sid);
    const s = this.byHash(id);
    if (s) return s;
    try {
      return parse(await this.client.get<ConfigMap>(CONFIG_MAPS, this.namespace, `${SESSION_PREFIX}${id}`));
    } catch {
      return undefined;
    }
  }

  all(): Session[] {
    const out = new Map<string, Session>();
    for (const cm of this.informer.list()) {
      const s = this.parsedOf(cm);
      if (s) out.set(s.id, s);
    }
    for (const [id, s] of this.recent) if (!out.has(id)) out.set(id, s);
    return [...out.values()];
  }

  private object(id: string, r: SessionRecord, resourceVersion?: string): ConfigMap {
    return {
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: {
        name: `${SESSION_PREFIX}${id}`, namespace: this.namespace,
        labels: { [SESSION_LABEL]: 'true', 'gitspaces.dev/infra': r.infra },
        annotations: { 'gitspaces.dev/user': r.user.slice(0, 256) },
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      data: { session: JSON.stringify(r) },
    };
  }

  private remember(cm: ConfigMap): Session | undefined {
    const s = parse(cm);
    if (s) this.recent.set(s.id, s);
    return s;
  }

  /** Stores a new session; returns its id (the cookie value). The user's oldest sessions beyond the cap end. */
  async create(r: SessionRecord): Promise<{ sid: string; session: Session }> {
    const sid = newSessionId();
    const session = this.remember(await this.client.create(CONFIG_MAPS, this.object(sessionHash(sid), r)));
    if (!session) throw new Error('the session was not stored');
    const mine = this.all().filter((s) => s.user === r.user && s.infra === r.infra).sort((a, b) => a.createdAt - b.createdAt);
    for (const old of mine.slice(0, Math.max(0, mine.length - MAX_SESSIONS_PER_USER))) await this.end(old, 'replaced');
    return { sid, session };
  }

  /**
   * Writes `next` over `s` if nobody changed it since `s` was read; undefined when someone did
   * (another replica leased or refreshed it) or it is gone.
   */
  async update(s: Session, next: SessionRecord): Promise<Session | undefined> {
    try {
      return this.remember(await this.client.replace(CONFIG_MAPS, this.object(s.id, next, s.resourceVersion)));
    } catch (e) {
      if (e instanceof KubeError && (e.status === 409 || e.status === 404)) return undefined;
      throw e;
    }
  }

  /** Ends the session everywhere; true when this call ended it (false: already gone). */
  async end(s: Session, _reason: EndReason): Promise<boolean> {
    this.recent.delete(s.id);
    try {
      await this.client.delete(CONFIG_MAPS, this.namespace, `${SESSION_PREFIX}${s.id}`);
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return false;
      throw e;
    }
  }
}
