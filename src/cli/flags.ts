import { readFileSync } from 'node:fs';
// Minimal flag parsing: `--name value` or `--name=value`.
export function flag(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

/** A secret from a file (when given) or an environment variable, trimmed; '' when neither. */
export function secretFrom(file: string | undefined, envName: string): string {
  return (file ? readFileSync(file, 'utf8') : (process.env[envName] ?? '')).trim();
}

/** A certificate and key read from their files, when both are given. */
export function tlsFiles(cert: string | undefined, key: string | undefined): { tls?: { cert: string; key: string } } {
  return cert && key ? { tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } } : {};
}

/** The namespace this pod runs in (its Lease, pool Secrets, Secrets that name none). */
export function podNamespace(): string {
  return process.env.POD_NAMESPACE ?? 'default';
}

export function hasFlag(argv: string[], name: string): boolean {
  return argv.includes(name);
}
