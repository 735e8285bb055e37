// Minimal flag parsing: `--name value` or `--name=value`.
export function flag(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

export function hasFlag(argv: string[], name: string): boolean {
  return argv.includes(name);
}
