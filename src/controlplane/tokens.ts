// The reference control plane's tokens: short-lived access tokens (ES256 JWT, `sub` = the Gitspace's
// owner) for the gateway, and refresh tokens to get new ones without the user's API token.
//
// A refresh token is 256 random bits, handed out once; the store keeps only its SHA-256. Refreshing
// (`POST /api/v1/token`, RFC 6749 §6: JSON or form-encoded) consumes it and returns a new one of the
// same chain (rotation). A consumed token presented again means two parties hold the chain — the
// client and a thief — so the whole chain is revoked (RFC 6819 §5.2.2.3; OAuth 2.1 for public
// clients); so is a chain whose Gitspace is gone or no longer its user's. `POST /api/v1/token/revoke`
// (RFC 7009) revokes a chain. Both endpoints answer OAuth-style errors: `{"error": "invalid_grant", …}`.
import { createHash, randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SignJWT, type CryptoKey } from 'jose';
import type { GitspaceRecord, Store } from './store.ts';

export interface TokenOptions {
  issuer: string;
  audience: string;
  tokenTtlSeconds: number;
  refreshTtlSeconds: number;
  /** Milliseconds since the epoch (tests move it). */
  now: () => number;
}

export interface SigningKey {
  kid: string;
  key: CryptoKey | Uint8Array;
}

/** What a user gets: the fields of the token call, and RFC 6749 §5.1's names for OAuth clients. */
export interface TokenResponse {
  token: string;
  expiresAt: string;
  refreshToken: string;
  refreshExpiresAt: string;
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
}

/** Longer than any token we hand out (`gsr_` + 43 characters): refused before hashing. */
export const MAX_REFRESH_TOKEN_LENGTH = 200;
/** Live refresh tokens per user and Gitspace; issuing more revokes the oldest. */
export const MAX_LIVE_REFRESH_TOKENS = 20;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const iso = (ms: number) => new Date(ms).toISOString();

function oauthFail(res: Response, status: number, error: string, description: string): void {
  res.status(status).set('cache-control', 'no-store').json({ error, error_description: description });
}

export class Tokens {
  private readonly store: Store;
  private readonly o: TokenOptions;
  private readonly key: () => Promise<SigningKey>;
  /** Whether a subject is still one of the configured users (a removed user's chains end). */
  private readonly isUser: (subject: string) => boolean;

  constructor(store: Store, o: TokenOptions, key: () => Promise<SigningKey>, isUser: (subject: string) => boolean) {
    this.store = store;
    this.o = o;
    this.key = key;
    this.isUser = isUser;
  }

  /** A fresh access token and a refresh token, of a new chain unless `rotate` names the consumed one. */
  async issue(g: GitspaceRecord, rotate?: { chain: string; consumes: string }): Promise<TokenResponse | undefined> {
    const now = this.o.now();
    const refreshToken = `gsr_${randomBytes(32).toString('base64url')}`;
    const refreshExpires = now + this.o.refreshTtlSeconds * 1000;
    const stored = this.store.addRefreshToken(
      { hash: sha256(refreshToken), chain: rotate?.chain ?? randomBytes(16).toString('hex'), subject: g.owner, gitspaceId: g.id, issuedAt: iso(now), expiresAt: iso(refreshExpires) },
      { ...(rotate ? { consumes: rotate.consumes } : {}), prune: iso(now), keep: MAX_LIVE_REFRESH_TOKENS },
    );
    if (!stored) return undefined;
    const k = await this.key();
    const iat = Math.floor(now / 1000);
    const exp = iat + this.o.tokenTtlSeconds;
    const token = await new SignJWT({ gitspace: g.id }).setProtectedHeader({ alg: 'ES256', kid: k.kid }).setIssuer(this.o.issuer).setAudience(this.o.audience)
      .setSubject(g.owner).setIssuedAt(iat).setExpirationTime(exp).sign(k.key);
    return {
      token, expiresAt: iso(exp * 1000), refreshToken, refreshExpiresAt: iso(refreshExpires),
      access_token: token, token_type: 'Bearer', expires_in: this.o.tokenTtlSeconds, refresh_token: refreshToken,
    };
  }

  /** A new access and refresh token for a refresh token, or why not (the `error_description`). */
  async refresh(presented: string): Promise<{ ok: TokenResponse; gitspace: GitspaceRecord } | { refused: string }> {
    const r = this.store.refreshToken(sha256(presented));
    const at = iso(this.o.now());
    if (!r) return { refused: 'unknown refresh token' };
    if (r.usedAt || r.revokedAt) {
      if (r.usedAt) this.store.revokeRefreshChain(r.chain, at);
      return { refused: r.revokedAt ? 'the refresh token was revoked' : 'the refresh token was already used: every token of its chain is now revoked' };
    }
    if (Date.parse(r.expiresAt) <= this.o.now()) return { refused: 'the refresh token expired' };
    const g = this.store.getGitspace(r.gitspaceId);
    if (!g || g.deleted || g.owner !== r.subject || !this.isUser(r.subject)) {
      this.store.revokeRefreshChain(r.chain, at);
      return { refused: 'the Gitspace is gone or no longer this user\'s' };
    }
    const ok = await this.issue(g, { chain: r.chain, consumes: r.hash });
    if (!ok) {
      // Another request consumed it between our read and our write: a reuse like any other.
      this.store.revokeRefreshChain(r.chain, at);
      return { refused: 'the refresh token was already used: every token of its chain is now revoked' };
    }
    return { ok, gitspace: g };
  }

  /** Revokes the chain of a refresh token; unknown tokens (and access tokens) change nothing. */
  revoke(presented: string): void {
    if (presented.length > MAX_REFRESH_TOKEN_LENGTH) return;
    const r = this.store.refreshToken(sha256(presented));
    if (r) this.store.revokeRefreshChain(r.chain, iso(this.o.now()));
  }

  /**
   * The unauthenticated token endpoints (the refresh token is the credential). Mounted before the
   * app's own 1 MB JSON parser, with small parsers of their own and OAuth-style errors.
   */
  router(): express.Router {
    const router = express.Router();
    const body = [express.json({ limit: '4kb' }), express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 })];
    const field = (req: Request, name: string): unknown => (req.body as Record<string, unknown> | undefined)?.[name];

    router.post('/api/v1/token', ...body, (req, res, next) => {
      const grant = field(req, 'grant_type');
      const presented = field(req, 'refresh_token');
      if (grant !== 'refresh_token') {
        if (typeof grant === 'string') oauthFail(res, 400, 'unsupported_grant_type', 'only grant_type=refresh_token is supported');
        else oauthFail(res, 400, 'invalid_request', 'grant_type is required');
        return;
      }
      if (typeof presented !== 'string' || !presented) {
        oauthFail(res, 400, 'invalid_request', 'refresh_token is required');
        return;
      }
      if (presented.length > MAX_REFRESH_TOKEN_LENGTH) {
        oauthFail(res, 400, 'invalid_request', 'refresh_token is too long');
        return;
      }
      this.refresh(presented).then((out) => {
        if ('refused' in out) {
          oauthFail(res, 400, 'invalid_grant', out.refused);
          return;
        }
        res.set('cache-control', 'no-store').json({ ...out.ok, urls: (out.gitspace.status?.urls as Record<string, unknown> | undefined) ?? {} });
      }, next);
    });

    router.post('/api/v1/token/revoke', ...body, (req, res) => {
      const presented = field(req, 'token');
      if (typeof presented !== 'string') {
        oauthFail(res, 400, 'invalid_request', 'token is required');
        return;
      }
      this.revoke(presented);
      res.status(200).set('cache-control', 'no-store').end();
    });

    // A body that is not JSON or form data, or too large: short, and never a stack trace.
    router.use((e: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const status = (e as { status?: number }).status ?? 500;
      if (status < 500) oauthFail(res, status, 'invalid_request', 'the request body is not valid JSON or form data, or too large');
      else oauthFail(res, 500, 'server_error', 'internal error');
    });
    return router;
  }
}
