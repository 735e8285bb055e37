// Cloud resource names derived from an infra's name: valid as GCE names/network tags and EC2
// group names (lowercase letter first, [-a-z0-9], at most 63), stable, and unique per infra.
import { createHash } from 'node:crypto';

export function infraResourceName(infra: string, suffix = ''): string {
  const clean = infra.toLowerCase().replace(/[^-a-z0-9]/g, '-');
  const tail = suffix ? `-${suffix}` : '';
  const base = `gitspaces-${clean}`;
  if (base.length + tail.length <= 63 && clean === infra) return `${base}${tail}`;
  // Long or rewritten names get a hash of the original so two infras never share a rule.
  const hash = createHash('sha256').update(infra).digest('hex').slice(0, 8);
  return `${base.slice(0, 63 - tail.length - 9).replace(/-+$/, '')}-${hash}${tail}`;
}
