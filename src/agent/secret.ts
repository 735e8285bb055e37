// The shared-secret check every agent endpoint starts with (constant time).
import { timingSafeEqual } from 'node:crypto';

export function secretMatches(secret: string, header: string | string[] | undefined): boolean {
  const want = Buffer.from(secret);
  const got = Buffer.from(typeof header === 'string' ? header : '');
  return want.length > 0 && got.length === want.length && timingSafeEqual(got, want);
}
