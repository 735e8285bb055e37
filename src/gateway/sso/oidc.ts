// The gateway as an OpenID Connect relying party, one client per infra, with panva's
// openid-client (certified): discovery from the issuer, the client id and secret from a Secret in
// the gateway's namespace (read at most once per 30 s), and what the rest of single sign-on needs
// of a login — the user and groups from the verified ID token's claims.
import * as oidc from 'openid-client';
import { SECRETS, parseDuration, type GitspaceInfra } from '../../api/index.ts';
import type { KubeClient, KubeObject } from '../../runtime/kube.ts';
import type { Logger } from '../../runtime/log.ts';

export const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
/** Parameters of the authorization request the flow sets itself: an infra's extras cannot replace them. */
const RESERVED = new Set(['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'response_mode', 'request', 'request_uri']);

export const CALLBACK_PATH = '/.gitspaces/oidc/callback';
export const SIGNED_OUT_PATH = '/.gitspaces/signed-out';

export interface Client {
  infra: string;
  config: oidc.Configuration;
  scopes: string;
  params: Record<string, string>;
  usernameClaim: string;
  groupsClaim: string;
  sessionMaxAgeMs: number;
}

/** Why a login failed, as the login-failure metric counts it. */
export type LoginFailure = 'idp_unavailable' | 'no_client' | 'bad_state' | 'idp_error' | 'token_rejected' | 'no_username' | 'bad_return_url' | 'bad_handoff';

export class LoginError extends Error {
  readonly reason: LoginFailure;
  readonly status: number;
  constructor(reason: LoginFailure, status: number, message: string) {
    super(message);
    this.reason = reason;
    this.status = status;
  }
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export class OidcClients {
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly log: Logger;
  private readonly cache = new Map<string, { at: number; key: string; client: Promise<Client> }>();

  constructor(kube: KubeClient, namespace: string, log: Logger) {
    this.kube = kube;
    this.namespace = namespace;
    this.log = log;
  }

  /** The infra's client; throws LoginError when its Secret or its issuer cannot be had. */
  async client(infra: GitspaceInfra): Promise<Client> {
    const name = infra.metadata.name ?? '';
    const key = JSON.stringify([infra.spec.auth, infra.metadata.generation]);
    let hit = this.cache.get(name);
    if (!hit || hit.key !== key || Date.now() - hit.at > 30_000) {
      const client = this.discover(infra);
      hit = { at: Date.now(), key, client };
      this.cache.set(name, hit);
      // A failure is kept 5 s (sign-in pages hit by many browsers do not each ask the API server
      // and the issuer again), then the next login tries again.
      client.catch(() => {
        setTimeout(() => {
          if (this.cache.get(name)?.client === client) this.cache.delete(name);
        }, 5_000).unref();
      });
    }
    return hit.client;
  }

  private async discover(infra: GitspaceInfra): Promise<Client> {
    const auth = infra.spec.auth;
    const o = auth?.oidc;
    if (!auth || !o) throw new LoginError('no_client', 404, 'single sign-on is not set up for this infra');
    let secret: SecretObject;
    try {
      secret = await this.kube.get<SecretObject>(SECRETS, this.namespace, o.clientSecretRef.name);
    } catch (e) {
      this.log.warn("cannot read the OIDC client's Secret (the gateway may read only the Secrets the chart lists in gateway.oidcClientSecrets)", { secret: `${this.namespace}/${o.clientSecretRef.name}`, error: e });
      throw new LoginError('no_client', 503, 'single sign-on is not available: the gateway cannot read its client settings');
    }
    const field = (k: string) => (secret.data?.[k] ? Buffer.from(secret.data[k], 'base64').toString('utf8').trim() : undefined);
    const clientId = field('client-id');
    const clientSecret = field('client-secret');
    if (!clientId) throw new LoginError('no_client', 503, 'single sign-on is not available: the client Secret has no client-id');
    const issuer = new URL(o.issuer ?? auth.issuer);
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(issuer, clientId, clientSecret, clientSecret ? oidc.ClientSecretBasic(clientSecret) : oidc.None(), {
        timeout: 5,
        // The CRD allows http only for localhost (development and tests).
        // eslint-disable-next-line @typescript-eslint/no-deprecated -- exactly that use
        ...(issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    } catch (e) {
      this.log.warn('OIDC discovery failed', { issuer: issuer.href, error: e });
      throw new LoginError('idp_unavailable', 503, 'single sign-on is not available: the identity provider does not answer');
    }
    config.timeout = 5;
    const scopes = new Set(['openid', ...(o.scopes?.length ? o.scopes : DEFAULT_SCOPES)]);
    const params = Object.fromEntries(Object.entries(o.authorizationParameters ?? {}).filter(([k]) => !RESERVED.has(k)));
    return {
      infra: infra.metadata.name ?? '', config, scopes: [...scopes].join(' '), params,
      usernameClaim: auth.usernameClaim ?? 'sub', groupsClaim: auth.groupsClaim ?? 'groups',
      sessionMaxAgeMs: parseDuration(o.sessionMaxAge ?? '12h') ?? 12 * 3_600_000,
    };
  }
}
