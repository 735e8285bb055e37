// The reference control plane's API users: `TOKEN=SUBJECT` pairs from a file or the environment,
// never from the command line (arguments are visible to every user of the machine in `ps`).
// An empty or short token is refused: with `=alice`, an empty bearer token would have matched.

export const MIN_TOKEN_LENGTH = 12;

/** Parses `TOKEN=SUBJECT` lines (blank lines and `#` comments skipped); throws naming the bad one. */
export function parseUsers(lines: string[], source: string): Record<string, string> {
  const users: Record<string, string> = {};
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const at = line.indexOf('=');
    const token = at < 0 ? '' : line.slice(0, at).trim();
    const subject = at < 0 ? '' : line.slice(at + 1).trim();
    const where = `${source}, entry ${String(i + 1)}`;
    if (!token || !subject) throw new Error(`${where}: expected TOKEN=SUBJECT with both parts`);
    if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) throw new Error(`${where}: a token needs at least ${String(MIN_TOKEN_LENGTH)} characters and no spaces`);
    if (token in users) throw new Error(`${where}: the same token twice`);
    users[token] = subject;
  }
  return users;
}
