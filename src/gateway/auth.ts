// Verifies users' access tokens (JWT) with jose against an issuer's JWKS: the signature with an
// asymmetric algorithm only (no `none`, no HS* — so a public key can never serve as an HMAC
// secret), `iss`, `aud`, `exp`/`nbf` with a small clock skew, and a subject. Key sets are fetched
// once per JWKS URI, cached, and fetched again when a token names an unknown `kid` (key rotation).
// Verified tokens are cached until they expire, so the proxied path does not verify a signature
// per request.
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { userOf } from './claims.ts';

export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export type AuthFailureReason =
  | 'missing' | 'malformed' | 'expired' | 'not_yet_valid' | 'bad_signature' | 'wrong_issuer' | 'wrong_audience'
  | 'unknown_key' | 'bad_algorithm' | 'no_subject' | 'no_issuer' | 'jwks_unavailable' | 'rate_limited' | 'not_owner' | 'no_session';

export class AuthError extends Error {
  readonly reason: AuthFailureReason;
  constructor(reason: AuthFailureReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface IssuerConfig {
  issuer: string;
  audience: string;
  /** Default: <issuer>/.well-known/jwks.json */
  jwksURI?: string;
  /** A static key set (from a Secret) used instead of fetching one. */
  keys?: JSONWebKeySet;
  /**
   * Names this version of the static key set (its Secret and resourceVersion): tokens verified
   * against an earlier version are verified again, so a key removed from the set stops working.
   */
  keysVersion?: string;
  /** The claim naming the user (default sub) and the one listing their groups (default groups). */
  usernameClaim?: string;
  groupsClaim?: string;
}

export interface Identity {
  /** The user (the issuer's usernameClaim: sub unless the infra says otherwise). */
  sub: string;
  /** The user's groups (the groupsClaim), matched against sharedWith's group:<name>. */
  groups?: string[];
  /** A single sign-on session's id (its hash), when the request came with one. */
  session?: string;
  /** Seconds since the epoch. */
  exp: number;
}

export interface VerifierOptions {
  clockToleranceSec?: number;
  /** Least time between two JWKS fetches for unknown key ids (jose's cooldown). */
  jwksCooldownMs?: number;
  /** How long a fetched key set is trusted before it is fetched again. */
  jwksMaxAgeMs?: number;
  maxCachedTokens?: number;
  now?: () => number;
}

function classify(e: unknown): AuthError {
  if (e instanceof AuthError) return e;
  if (e instanceof errors.JWTExpired) return new AuthError('expired', 'the token has expired');
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'nbf') return new AuthError('not_yet_valid', 'the token is not valid yet');
    if (e.claim === 'iss') return new AuthError('wrong_issuer', 'the token is from another issuer');
    if (e.claim === 'aud') return new AuthError('wrong_audience', 'the token is for another audience');
    return new AuthError('malformed', `the token's ${e.claim} claim is invalid`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return new AuthError('bad_signature', 'the token signature does not verify');
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) return new AuthError('unknown_key', "the token's signing key is not the issuer's");
  if (e instanceof errors.JOSEAlgNotAllowed) return new AuthError('bad_algorithm', 'the token uses an algorithm that is not allowed');
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid) return new AuthError('jwks_unavailable', "the issuer's keys cannot be fetched");
  if (e instanceof errors.JOSEError) return new AuthError('malformed', 'the token is malformed');
  if (e instanceof TypeError || (e instanceof Error && /fetch|ECONNREFUSED|status code/i.test(e.message))) return new AuthError('jwks_unavailable', "the issuer's keys cannot be fetched");
  return new AuthError('malformed', 'the token is malformed');
}

export class TokenVerifier {
  private readonly o: Required<VerifierOptions>;
  private readonly keySets = new Map<string, JWTVerifyGetKey>();
  private readonly cache = new Map<string, Identity>();

  constructor(o: VerifierOptions = {}) {
    this.o = { clockToleranceSec: 30, jwksCooldownMs: 30_000, jwksMaxAgeMs: 10 * 60_000, maxCachedTokens: 10_000, now: Date.now, ...o };
  }

  private readonly localSets = new Map<string, JWTVerifyGetKey>();

  private localSet(keys: JSONWebKeySet, version: string | undefined): JWTVerifyGetKey {
    const id = version ?? JSON.stringify(keys);
    let set = this.localSets.get(id);
    if (!set) {
      if (this.localSets.size > 64) this.localSets.clear();
      set = createLocalJWKSet(keys);
      this.localSets.set(id, set);
    }
    return set;
  }

  private keySet(uri: string): JWTVerifyGetKey {
    let set = this.keySets.get(uri);
    if (!set) {
      set = createRemoteJWKSet(new URL(uri), { cooldownDuration: this.o.jwksCooldownMs, cacheMaxAge: this.o.jwksMaxAgeMs, timeoutDuration: 5_000 });
      this.keySets.set(uri, set);
    }
    return set;
  }

  async verify(token: string, issuer: IssuerConfig): Promise<Identity> {
    if (!token) throw new AuthError('missing', 'a token is required');
    if (token.length > 16_384 || !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) throw new AuthError('malformed', 'the token is malformed');
    // The token itself is the key (bounded cache, tokens ≤ 16 KiB): hashing it per request costs
    // more than the lookup it guards.
    const key = `${issuer.issuer}\0${issuer.audience}\0${issuer.keys ? `static:${issuer.keysVersion ?? ''}` : 'remote'}\0${issuer.usernameClaim ?? ''}\0${issuer.groupsClaim ?? ''}\0${token}`;
    const nowSec = this.o.now() / 1000;
    const hit = this.cache.get(key);
    if (hit) {
      if (hit.exp + this.o.clockToleranceSec > nowSec) return hit;
      this.cache.delete(key);
    }
    let identity: Identity;
    try {
      const jwks = issuer.jwksURI ?? `${issuer.issuer.replace(/\/$/, '')}/.well-known/jwks.json`;
      const { payload } = await jwtVerify(token, issuer.keys ? this.localSet(issuer.keys, issuer.keysVersion) : this.keySet(jwks), {
        issuer: issuer.issuer,
        audience: issuer.audience,
        algorithms: ALLOWED_ALGORITHMS,
        clockTolerance: this.o.clockToleranceSec,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(this.o.now()),
      });
      const { user, groups } = userOf(payload, issuer.usernameClaim ?? 'sub', issuer.groupsClaim ?? 'groups');
      if (!user) throw new AuthError('no_subject', `the token has no ${issuer.usernameClaim ?? 'sub'} claim`);
      identity = { sub: user, groups, exp: payload.exp ?? 0 };
    } catch (e) {
      throw classify(e);
    }
    if (this.cache.size >= this.o.maxCachedTokens) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, identity);
    return identity;
  }
}
