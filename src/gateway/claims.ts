// Who a verified token or ID token says the user is: the infra's usernameClaim and groupsClaim,
// bounded (a hostile issuer's claims reach memory and audit lines).

/** The user and groups a set of claims names, per the infra's claim settings. */
export function userOf(claims: Record<string, unknown>, usernameClaim: string, groupsClaim: string): { user: string | undefined; groups: string[] } {
  const u = claims[usernameClaim];
  const g = claims[groupsClaim];
  const groups = (Array.isArray(g) ? g : typeof g === 'string' ? [g] : []).filter((x): x is string => typeof x === 'string' && x.length > 0 && x.length <= 256).slice(0, 256);
  return { user: typeof u === 'string' && u.length > 0 && u.length <= 256 ? u : undefined, groups };
}
