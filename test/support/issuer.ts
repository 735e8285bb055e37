// A token issuer for tests: an RSA signing key (more can be added: rotation), its JWKS served at
// <issuer>/.well-known/jwks.json over loopback HTTP, and a helper that mints JWTs — including the
// malformed and hostile kinds a gateway must refuse.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export class TestIssuer {
  readonly keys: SigningKey[] = [];
  private server: Server | undefined;
  url = '';
  audience = 'gitspaces';
  fetches = 0;

  static async start(): Promise<TestIssuer> {
    const i = new TestIssuer();
    await i.addKey('k1');
    i.server = createServer((req, res) => {
      if (req.url === '/.well-known/jwks.json') {
        i.fetches++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: i.keys.map((k) => k.publicJwk) }));
        return;
      }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => i.server?.listen(0, '127.0.0.1', r));
    i.url = `http://127.0.0.1:${(i.server.address() as AddressInfo).port}`;
    return i;
  }

  async addKey(kid: string, publish = true): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    const k = { kid, privateKey, publicJwk };
    if (publish) this.keys.push(k);
    return k;
  }

  /** A token for `sub`, valid for an hour unless `claims` or `o` say otherwise. */
  async token(sub: string | undefined, o: { key?: SigningKey; claims?: Record<string, unknown>; expSec?: number; nbfSec?: number; iss?: string; aud?: string } = {}): Promise<string> {
    const key = o.key ?? this.keys[0];
    if (!key) throw new Error('no key');
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ ...o.claims })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(o.iss ?? this.url)
      .setAudience(o.aud ?? this.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + (o.expSec ?? 3600));
    if (sub !== undefined) jwt.setSubject(sub);
    if (o.nbfSec !== undefined) jwt.setNotBefore(now + o.nbfSec);
    return jwt.sign(key.privateKey);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
  }
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** `alg: none`: a token with no signature. */
export function unsignedToken(payload: Record<string, unknown>): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

/** The classic key-confusion attack: HS256 with the issuer's *public* key as the HMAC secret. */
export async function hmacWithPublicKey(payload: Record<string, unknown>, publicJwk: JWK, kid: string): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const head = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(payload)}`;
  const sig = createHmac('sha256', JSON.stringify(publicJwk)).update(head).digest('base64url');
  return `${head}.${sig}`;
}

/** The same token with its payload changed and the signature kept. */
export function tamper(token: string, change: Record<string, unknown>): string {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${h ?? ''}.${b64({ ...payload, ...change })}.${s ?? ''}`;
}
