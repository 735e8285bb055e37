// Sealed values the gateway hands to browsers and reads back: the login flow's state (PKCE
// verifier, nonce, where to return) and the hand-off from the login host to a Gitspace's host.
// AES-256-GCM under a key derived (HKDF) from the hop key every replica reads, so any replica can
// open what another sealed; each purpose has its own key, and every value carries its expiry.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export type Purpose = 'login-flow' | 'handoff' | 'session-tokens';

export class Sealer {
  private readonly keys = new Map<Purpose, Buffer>();
  private readonly secret: string;

  constructor(secret: string) {
    this.secret = secret;
  }

  private key(purpose: Purpose): Buffer {
    let k = this.keys.get(purpose);
    if (!k) {
      k = Buffer.from(hkdfSync('sha256', this.secret, 'gitspaces-gateway', `gitspaces.dev/${purpose}/v1`, 32));
      this.keys.set(purpose, k);
    }
    return k;
  }

  /** `value` (JSON), readable until `ttlMs` from now, as base64url. */
  seal(purpose: Purpose, value: unknown, ttlMs: number, now = Date.now()): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key(purpose), iv);
    const body = Buffer.concat([c.update(JSON.stringify({ v: value, exp: now + ttlMs }), 'utf8'), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  /** The value, or undefined when it was not sealed by us for this purpose, was altered, or expired. */
  open(purpose: Purpose, sealed: string, now = Date.now()): unknown {
    if (sealed.length > 8192 || !/^[\w-]+$/.test(sealed)) return undefined;
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 29) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key(purpose), raw.subarray(0, 12));
      d.setAuthTag(raw.subarray(12, 28));
      const text = Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
      const { v, exp } = JSON.parse(text) as { v: unknown; exp: number };
      return exp > now ? v : undefined;
    } catch {
      return undefined;
    }
  }
}
