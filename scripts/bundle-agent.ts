// The agent bundle a VM downloads from the gateway (DESIGN.md "On the VM"): one tarball per CPU
// architecture, `gitspaces-agent-<version>-linux-<arch>.tar.gz`, holding `gitspaces-agent-<version>/`
// with
//   bin/node               Node 24 for that architecture (the npm package node-linux-<arch>, at the
//                          exact version of the `node` devDependency)
//   bin/gitspaces-agent    sh wrapper: that node running lib/agent/main.js
//   lib/                   src/agent and src/api, compiled (nothing else of ours)
//   node_modules/          the production packages the agent imports (found by scanning the
//                          compiled imports) and the tools it runs (AGENT_TOOLS: the reference
//                          devcontainer CLI), their dependencies, at package-lock.json's versions,
//                          no install scripts and no optional packages (ssh2 stays pure JS:
//                          docs/decisions.md)
//   package.json, VERSION
// plus `<file>.sha256` and `manifest.json` (src/api/bundle.ts) next to the tarballs. Same inputs,
// same bytes: sorted entries, fixed mtimes and owners, `gzip -n`.
//
//   npm run bundle:agent -- [--arch x64,arm64|all] [--out DIR] [--no-verify]
//
// Downloads (Node runtimes, npm packages) are cached under ${GITSPACES_CACHE:-~/.cache/gitspaces}.
// Tests call ensureAgentBundle(): built once per content hash of its inputs, shared by concurrent
// callers.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, cpSync, createReadStream, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { BUNDLE_ARCHES, bundleDirName, bundleFileName, type BundleArch, type BundleManifest } from '../src/api/bundle.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface BuildOptions {
  /** Architectures to build (default: this machine's). */
  arches?: BundleArch[];
  /** Where the tarballs, their .sha256 files and manifest.json go (default build/agent-bundle). */
  out?: string;
  /** Unpack each tarball and check it (default true). */
  verify?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface BuildResult {
  dir: string;
  manifest: BundleManifest;
  /** Wall-clock seconds the build took. */
  seconds: number;
}

/** Where downloads and built bundles are cached. */
export function cacheRoot(): string {
  return process.env.GITSPACES_CACHE || join(homedir(), '.cache', 'gitspaces');
}

export function hostArch(): BundleArch {
  const a = process.arch;
  if (a !== 'x64' && a !== 'arm64') throw new Error(`no agent bundle for this machine's architecture (${a})`);
  return a;
}

function readJSON(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The operator's version: the bundle's, and the path segment VMs download it under. */
export function packageVersion(): string {
  return (readJSON(join(ROOT, 'package.json')) as { version: string }).version;
}

/** The exact Node version bundles ship: the installed `node` devDependency (else the lockfile's). */
export function nodeVersion(): string {
  const installed = join(ROOT, 'node_modules/node/package.json');
  const v = existsSync(installed) ? (readJSON(installed) as { version: string }).version : readLock().packages['node_modules/node']?.version;
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) throw new Error('cannot tell the Node version: the `node` devDependency is neither installed nor in package-lock.json');
  return v;
}

// --- processes ------------------------------------------------------------------------------------

/** The environment without what `npm run` sets (npm_config_local_prefix would point our npm at the repository). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
}

async function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { cwd: o.cwd ?? ROOT, env: o.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) {
        resolvePromise(stdout);
        return;
      }
      const tail = `${stdout}\n${Buffer.concat(err).toString('utf8')}`.trim().split('\n').slice(-30).join('\n');
      reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code ?? '?'}`}):\n${tail}`));
    });
  });
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Moves `from` to `to` unless another builder got there first (then `from` is dropped). */
function publish(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if (!existsSync(to)) throw e;
    rmSync(from, { recursive: true, force: true });
  }
}

// --- compile --------------------------------------------------------------------------------------

/**
 * src/agent and src/api compiled into `<stage>/lib` with the build config (no declarations or
 * source maps: the bundle carries no sources to map to). Only those two folders: anything else of
 * ours they import fails the build.
 */
async function compile(stage: string): Promise<string> {
  const lib = join(stage, 'lib');
  const config = join(stage, 'tsconfig.json');
  writeFileSync(config, JSON.stringify({
    extends: join(ROOT, 'tsconfig.build.json'),
    compilerOptions: {
      outDir: lib, rootDir: join(ROOT, 'src'), declaration: false, sourceMap: false, noEmitOnError: true,
      typeRoots: [join(ROOT, 'node_modules/@types')],
    },
    include: [join(ROOT, 'src/agent'), join(ROOT, 'src/api')],
  }));
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', config]);
  const top = readdirSync(lib).sort();
  if (top.join(',') !== 'agent,api') throw new Error(`the agent must build from src/agent and src/api alone, but it also compiled: ${top.filter((d) => d !== 'agent' && d !== 'api').join(', ')}`);
  if (!existsSync(join(lib, 'agent/main.js'))) throw new Error('src/agent/main.ts (the agent\'s entry) did not compile to lib/agent/main.js');
  return lib;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name)).sort();
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/**
 * The npm packages the compiled agent imports: every file under lib/agent is a possible entry
 * (the agent may run some of them by path), and lib/api counts as far as they import it. Static,
 * dynamic and require() imports, read by TypeScript's scanner (comments and strings don't count).
 */
export function importedPackages(lib: string): string[] {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const queue = walk(join(lib, 'agent')).filter((f) => f.endsWith('.js'));
  while (queue.length) {
    const file = queue.shift() ?? '';
    if (seen.has(file)) continue;
    seen.add(file);
    for (const ref of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      const spec = ref.fileName;
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(lib + sep)) throw new Error(`${relative(lib, file)} imports ${spec}, outside the bundle`);
        if (existsSync(target)) queue.push(target);
        else throw new Error(`${relative(lib, file)} imports ${spec}, which did not compile`);
      } else if (!spec.startsWith('node:') && !isBuiltin(spec)) {
        packages.add(packageName(spec));
      }
    }
  }
  return [...packages].sort();
}

// --- production dependencies ----------------------------------------------------------------------

export interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [k: string]: unknown;
}

export interface Lockfile {
  name?: string;
  version?: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockEntry>;
}

export function readLock(): Lockfile {
  return readJSON(join(ROOT, 'package-lock.json')) as Lockfile;
}

/** Where Node would find `name` from the package at `from` ('' = the root), in the lockfile's tree. */
function resolveInLock(lock: Lockfile, from: string, name: string): string | undefined {
  let at = from;
  for (;;) {
    const candidate = `${at ? `${at}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!at) return undefined;
    const i = at.lastIndexOf('/node_modules/');
    at = i >= 0 ? at.slice(0, i) : '';
  }
}

/**
 * The lockfile entries (by install path) of `roots` and everything they depend on, optional
 * packages included (npm skips them with --omit=optional, but a lockfile without them would send
 * it to the registry to resolve them).
 */
export function lockClosure(lock: Lockfile, roots: string[]): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {};
  const queue: { from: string; name: string; optional: boolean; why: string }[] = roots.map((name) => ({ from: '', name, optional: false, why: 'the agent' }));
  while (queue.length) {
    const { from, name, optional, why } = queue.shift() ?? { from: '', name: '', optional: false, why: '' };
    const path = resolveInLock(lock, from, name);
    if (!path) {
      if (optional) continue;
      throw new Error(`${why} imports ${name}, which package-lock.json does not have${from ? '' : ' (add it to dependencies)'}`);
    }
    if (out[path]) continue;
    const entry = lock.packages[path] ?? {};
    if (entry.link) throw new Error(`${name} is a linked package (${path}); the bundle takes registry packages only`);
    if (!from && entry.dev) throw new Error(`the agent imports ${name}, a devDependency: make it a dependency`);
    out[path] = entry;
    const deps: [string, boolean][] = [
      ...Object.keys(entry.dependencies ?? {}).map((d): [string, boolean] => [d, false]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((d): [string, boolean] => [d, true]),
      ...Object.keys(entry.peerDependencies ?? {}).map((d): [string, boolean] => [d, entry.peerDependenciesMeta?.[d]?.optional === true]),
    ];
    for (const [d, opt] of deps) queue.push({ from: path, name: d, optional: opt, why: name });
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** package.json and package-lock.json of a project that installs exactly `packages` from the lockfile. */
export function dependencyProject(lock: Lockfile, packages: string[], version: string): { manifest: object; lock: Lockfile } {
  const closure = lockClosure(lock, packages);
  const direct = Object.fromEntries(packages.map((p) => [p, closure[`node_modules/${p}`]?.version ?? '']));
  const root = { name: 'gitspaces-agent', version, dependencies: direct };
  return {
    manifest: { ...root, private: true, type: 'module' },
    lock: { name: root.name, version, lockfileVersion: 3, requires: true, packages: { '': root, ...closure } },
  };
}

/**
 * node_modules with the agent's production dependencies, installed once per dependency set under
 * the cache (npm install from a trimmed lockfile: exact versions, integrity checked, no scripts,
 * no optional packages).
 */
async function installDependencies(packages: string[], version: string, log: (s: string) => void): Promise<string> {
  const project = dependencyProject(readLock(), packages, version);
  const key = createHash('sha256').update(JSON.stringify(project)).digest('hex').slice(0, 16);
  const base = join(cacheRoot(), 'agent-deps');
  const done = join(base, key);
  if (existsSync(join(done, '.complete'))) return join(done, 'node_modules');
  mkdirSync(base, { recursive: true });
  const work = mkdtempSync(join(base, `tmp-${key}-`));
  try {
    writeFileSync(join(work, 'package.json'), `${JSON.stringify(project.manifest, null, 2)}\n`);
    writeFileSync(join(work, 'package-lock.json'), `${JSON.stringify(project.lock, null, 2)}\n`);
    log(`installing ${packages.join(', ')} and their dependencies from package-lock.json`);
    await run('npm', ['install', '--omit=dev', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: work });
    // What npm installed must be exactly the lockfile's (and nothing optional).
    for (const [path, entry] of Object.entries(project.lock.packages)) {
      if (!path) continue;
      const pj = join(work, path, 'package.json');
      if (entry.optional) {
        if (existsSync(pj)) throw new Error(`npm installed the optional package ${path}`);
        continue;
      }
      const got = existsSync(pj) ? (readJSON(pj) as { version: string }).version : 'nothing';
      if (got !== entry.version) throw new Error(`npm installed ${got} at ${path}; package-lock.json has ${entry.version ?? '?'}`);
    }
    rmSync(join(work, 'node_modules/.package-lock.json'), { force: true });
    writeFileSync(join(work, '.complete'), '');
    publish(work, done);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return join(done, 'node_modules');
}

// --- Node runtimes --------------------------------------------------------------------------------

/** ELF e_machine of a binary (62 = x86-64, 183 = AArch64). */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, head.length, 0) < head.length || head.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF binary`);
    return head.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

const ELF_MACHINE: Record<BundleArch, number> = { x64: 62, arm64: 183 };

/** Node's `bin/node` for `arch`: `npm pack node-linux-<arch>@<version>` once, unpacked in the cache. */
async function nodeRuntime(arch: BundleArch, version: string, log: (s: string) => void): Promise<string> {
  const base = join(cacheRoot(), 'node-runtimes');
  const name = `node-linux-${arch}-${version}`;
  const dir = join(base, name);
  const bin = join(dir, 'bin/node');
  if (existsSync(join(dir, '.complete'))) return bin;
  mkdirSync(base, { recursive: true });
  const tgz = join(base, `${name}.tgz`);
  if (!existsSync(tgz)) {
    log(`downloading Node ${version} for linux-${arch} (npm pack node-linux-${arch}@${version}, once)`);
    const work = mkdtempSync(join(base, `tmp-pack-${name}-`));
    try {
      await run('npm', ['pack', `node-linux-${arch}@${version}`, '--pack-destination', work, '--loglevel=error'], { cwd: work });
      const packed = readdirSync(work).find((f) => f.endsWith('.tgz'));
      if (!packed) throw new Error(`npm pack node-linux-${arch}@${version} made no tarball`);
      publish(join(work, packed), tgz);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const work = mkdtempSync(join(base, `tmp-unpack-${name}-`));
  try {
    await run('tar', ['-xzf', tgz, '-C', work, '--strip-components=1', '--no-same-owner', 'package/bin/node']);
    const unpacked = join(work, 'bin/node');
    if (elfMachine(unpacked) !== ELF_MACHINE[arch]) throw new Error(`node-linux-${arch}@${version}'s bin/node is not a linux-${arch} binary`);
    chmodSync(unpacked, 0o755);
    writeFileSync(join(work, '.complete'), '');
    publish(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

// --- the tarball ----------------------------------------------------------------------------------

/** The wrapper VMs run (through a symlink too: it finds its own directory). */
/**
 * Packages the agent runs as programs rather than imports (so the import scan cannot find them),
 * each with its entry script: the reference devcontainer CLI (`devcontainer up`, not our own).
 */
export const AGENT_TOOLS: Record<string, string> = { '@devcontainers/cli': 'devcontainer.js' };

export const WRAPPER = `#!/bin/sh
# The Gitspaces VM agent on the Node it ships with: gitspaces-agent --root DIR
here="$(dirname "$(readlink -f "$0" 2>/dev/null || echo "$0")")"
exec "$here/node" "$here/../lib/agent/main.js" "$@"
`;

/** `<stage>/<top>` as a gzipped tarball at `file` (written aside, then renamed into place). */
async function tarball(stage: string, top: string, file: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  // Same inputs, same bytes: names sorted, one mtime, root-owned, modes normalised, no gzip name/time.
  const script = 'set -euo pipefail; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w --format=gnu -C "$1" -cf - "$2" | gzip -n > "$3"';
  try {
    await run('bash', ['-c', script, 'bash', stage, top, tmp]);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function hardlinkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    cpSync(from, to);
  }
}

/** Builds the bundles for `arches` into `out` and returns the manifest (merged with one there for the same version). */
export async function buildAgentBundle(o: BuildOptions = {}): Promise<BuildResult> {
  const started = Date.now();
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const arches = [...new Set(o.arches ?? [hostArch()])].sort();
  const out = resolve(o.out ?? join(ROOT, 'build/agent-bundle'));
  const version = packageVersion();
  const node = nodeVersion();
  mkdirSync(out, { recursive: true });
  const stage = mkdtempSync(join(tmpdir(), 'gitspaces-agent-bundle-'));
  try {
    log(`compiling src/agent and src/api`);
    const lib = await compile(stage);
    const packages = importedPackages(lib);
    const deps = await installDependencies([...packages, ...Object.keys(AGENT_TOOLS)].sort(), version, log);
    const runtimes = await Promise.all(arches.map((a) => nodeRuntime(a, node, log)));
    const previous = existsSync(join(out, 'manifest.json')) ? readJSON(join(out, 'manifest.json')) as BundleManifest : undefined;
    const manifest: BundleManifest = { version, files: {} };
    if (previous?.version === version) {
      for (const a of BUNDLE_ARCHES) {
        const f = previous.files?.[a];
        if (f && !arches.includes(a) && existsSync(join(out, f.file)) && statSync(join(out, f.file)).size === f.size) manifest.files[a] = f;
      }
    }
    const top = bundleDirName(version);
    // The architectures pack side by side (tar | gzip of a 120 MB binary is most of the time).
    await Promise.all(arches.map(async (arch, i) => {
      const root = join(stage, arch);
      const b = join(root, top);
      mkdirSync(join(b, 'bin'), { recursive: true });
      hardlinkOrCopy(runtimes[i] ?? '', join(b, 'bin/node'));
      writeFileSync(join(b, 'bin/gitspaces-agent'), WRAPPER, { mode: 0o755 });
      chmodSync(join(b, 'bin/gitspaces-agent'), 0o755);
      cpSync(lib, join(b, 'lib'), { recursive: true });
      cpSync(deps, join(b, 'node_modules'), { recursive: true });
      writeFileSync(join(b, 'package.json'), `${JSON.stringify({ name: 'gitspaces-agent', version, private: true, type: 'module' }, null, 2)}\n`);
      writeFileSync(join(b, 'VERSION'), `${version}\n`);
      const file = bundleFileName(version, arch);
      log(`packing ${file}`);
      await tarball(root, top, join(out, file));
      const sha256 = await sha256File(join(out, file));
      writeFileSync(join(out, `${file}.sha256`), `${sha256}  ${file}\n`);
      manifest.files[arch] = { file, sha256, size: statSync(join(out, file)).size };
    }));
    manifest.files = Object.fromEntries(BUNDLE_ARCHES.filter((a) => manifest.files[a]).map((a) => [a, manifest.files[a]]));
    if (o.verify ?? true) await Promise.all(arches.map((arch) => verifyBundle(out, manifest, arch, node, packages, log)));
    writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return { dir: out, manifest, seconds: (Date.now() - started) / 1000 };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

// --- verification ---------------------------------------------------------------------------------

/** Runs a command for at most `ms`; what it printed, and its exit (undefined: still running, killed). */
async function runBriefly(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, ms: number): Promise<{ code: number | null | undefined; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => chunks.push(d));
    p.stderr.on('data', (d: Buffer) => chunks.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 2_000).unref();
    }, ms);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: timedOut ? undefined : code, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

const MISSING_MODULE = /ERR_MODULE_NOT_FOUND|Cannot find (module|package)|ERR_UNSUPPORTED_DIR_IMPORT|ERR_REQUIRE_ESM|SyntaxError/;

/**
 * Unpacks the tarball and checks it: its sha256, the layout, the binary's architecture; on this
 * machine's architecture also that its Node is the right version, every dependency loads from the
 * bundle, and the agent starts (with an empty root it fails or waits, but never for want of a module).
 */
export async function verifyBundle(out: string, manifest: BundleManifest, arch: BundleArch, node: string, packages: string[], log: (s: string) => void = () => undefined): Promise<void> {
  const entry = manifest.files[arch];
  if (!entry) throw new Error(`the manifest has no ${arch} bundle`);
  const file = join(out, entry.file);
  if ((await sha256File(file)) !== entry.sha256) throw new Error(`${entry.file}: sha256 differs from the manifest`);
  const check = mkdtempSync(join(tmpdir(), 'gitspaces-agent-check-'));
  try {
    await run('tar', ['-xzf', file, '-C', check, '--no-same-owner']);
    const top = readdirSync(check);
    if (top.join(',') !== bundleDirName(manifest.version)) throw new Error(`${entry.file} unpacks to ${top.join(', ')}, not ${bundleDirName(manifest.version)}/`);
    const b = join(check, bundleDirName(manifest.version));
    for (const f of ['bin/node', 'bin/gitspaces-agent', 'lib/agent/main.js', 'package.json', 'VERSION', ...packages.map((p) => `node_modules/${p}/package.json`)]) {
      if (!existsSync(join(b, f))) throw new Error(`${entry.file} lacks ${f}`);
    }
    for (const f of ['bin/node', 'bin/gitspaces-agent']) if ((statSync(join(b, f)).mode & 0o111) !== 0o111) throw new Error(`${entry.file}: ${f} is not executable`);
    if (readFileSync(join(b, 'VERSION'), 'utf8').trim() !== manifest.version) throw new Error(`${entry.file}: VERSION is not ${manifest.version}`);
    if ((readJSON(join(b, 'package.json')) as { type?: string }).type !== 'module') throw new Error(`${entry.file}: package.json is not {"type":"module"}`);
    const tops = readdirSync(join(b, 'lib')).sort().join(',');
    if (tops !== 'agent,api') throw new Error(`${entry.file}: lib/ holds ${tops}, not agent and api`);
    if (elfMachine(join(b, 'bin/node')) !== ELF_MACHINE[arch]) throw new Error(`${entry.file}: bin/node is not a linux-${arch} binary`);
    if (process.platform !== 'linux' || arch !== process.arch) {
      log(`${entry.file}: layout and binary checked (cannot run linux-${arch} here)`);
      return;
    }
    // A bare environment: nothing from this repository or the machine's Node may help it along.
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: check, LANG: 'C.UTF-8' };
    const v = (await run(join(b, 'bin/node'), ['--version'], { cwd: b, env })).trim();
    if (v !== `v${node}`) throw new Error(`${entry.file}: bin/node is ${v}, not v${node}`);
    const imports = packages.map((p) => `await import(${JSON.stringify(p)});`).join(' ');
    await run(join(b, 'bin/node'), ['--input-type=module', '-e', `${imports} process.stdout.write('ok')`], { cwd: b, env });
    for (const [tool, script] of Object.entries(AGENT_TOOLS)) {
      const said = (await run(join(b, 'bin/node'), [join(b, 'node_modules', tool, script), '--version'], { cwd: b, env })).trim();
      if (!/^\d+\.\d+\.\d+/.test(said)) throw new Error(`${entry.file}: ${tool} --version said ${said}`);
    }
    const root = join(check, 'empty-root');
    mkdirSync(root);
    const r = await runBriefly(join(b, 'bin/gitspaces-agent'), ['--root', root], check, env, 3_000);
    if (MISSING_MODULE.test(r.output)) throw new Error(`${entry.file}: the agent cannot load:\n${r.output.trim()}`);
    const lines = r.output.split('\n').map((l) => l.trim()).filter(Boolean);
    const said = lines.find((l) => /^(\w*Error|error)\b|Error:/.test(l)) ?? lines.at(-1) ?? '(no output)';
    const how = r.code === undefined ? 'still running after 3 s (stopped)' : `exited ${r.code ?? 'by a signal'}: ${said}`;
    log(`${entry.file}: node ${v}, ${packages.join(', ')} load; gitspaces-agent --root <empty dir> ${how}`);
  } finally {
    rmSync(check, { recursive: true, force: true });
  }
}

// --- tests: one build per input hash ---------------------------------------------------------------

/** What a bundle is built from: its hash names the cached build. */
export function bundleInputsHash(arches: BundleArch[]): string {
  const h = createHash('sha256');
  h.update(`arches ${[...arches].sort().join(',')}\nnode ${nodeVersion()}\n`);
  const files = [
    ...walk(join(ROOT, 'src/agent')), ...walk(join(ROOT, 'src/api')),
    join(ROOT, 'package.json'), join(ROOT, 'package-lock.json'), join(ROOT, 'tsconfig.json'), join(ROOT, 'tsconfig.build.json'), fileURLToPath(import.meta.url),
  ];
  for (const f of files) {
    h.update(`${relative(ROOT, f)}\n`);
    h.update(readFileSync(f));
    h.update('\n');
  }
  return h.digest('hex').slice(0, 20);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An exclusive lock file (pid inside); a dead holder's or an hour-old lock is taken over. */
async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let stale: boolean;
      try {
        const pid = Number(readFileSync(lock, 'utf8'));
        stale = (pid > 0 && !alive(pid)) || Date.now() - statSync(lock).mtimeMs > 3_600_000;
      } catch {
        continue; // released while we looked
      }
      if (stale) rmSync(lock, { force: true });
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Keeps the newest few builds, and any built in the last hour (another worktree may be using it). */
function prune(base: string, keep: string): void {
  const dirs = readdirSync(base, { withFileTypes: true }).filter((d) => d.isDirectory() && /^[0-9a-f]{20}$/.test(d.name) && d.name !== keep)
    .map((d) => ({ path: join(base, d.name), at: statSync(join(base, d.name)).mtimeMs })).sort((a, b) => b.at - a.at);
  for (const d of dirs.slice(3)) if (Date.now() - d.at > 3_600_000) rmSync(d.path, { recursive: true, force: true });
}

/**
 * The agent bundle of the current sources for this machine's architecture (or `arches`), built
 * once into ${GITSPACES_CACHE}/agent-bundle/<hash of its inputs>/ and reused; concurrent callers
 * (parallel test processes) wait for one build.
 */
export async function ensureAgentBundle(o: { arches?: BundleArch[] } = {}): Promise<{ dir: string; manifest: BundleManifest }> {
  const arches = o.arches ?? [hostArch()];
  const base = join(cacheRoot(), 'agent-bundle');
  const hash = bundleInputsHash(arches);
  const dir = join(base, hash);
  const ready = () => existsSync(join(dir, '.complete')) ? { dir, manifest: readJSON(join(dir, 'manifest.json')) as BundleManifest } : undefined;
  const hit = ready();
  if (hit) return hit;
  mkdirSync(base, { recursive: true });
  return withLock(join(base, `${hash}.lock`), async () => {
    const again = ready();
    if (again) return again;
    const work = join(base, `${hash}.tmp-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    try {
      process.stderr.write(`building the agent bundle (${arches.join(', ')}) into ${dir}\n`);
      await buildAgentBundle({ arches, out: work, log: () => undefined });
      writeFileSync(join(work, '.complete'), '');
      rmSync(dir, { recursive: true, force: true });
      renameSync(work, dir);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    prune(base, hash);
    const built = ready();
    if (!built) throw new Error(`the agent bundle build left nothing in ${dir}`);
    return built;
  });
}

// --- command line ---------------------------------------------------------------------------------

function parseArgs(argv: string[]): BuildOptions {
  const o: BuildOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const [name, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i] ?? '';
    if (name === '--arch') {
      const v = value();
      const list = v === 'all' ? [...BUNDLE_ARCHES] : v.split(',').map((s) => s.trim()).filter(Boolean);
      for (const x of list) if (!(BUNDLE_ARCHES as readonly string[]).includes(x)) throw new Error(`--arch: ${x} is not one of ${BUNDLE_ARCHES.join(', ')}, all`);
      o.arches = list as BundleArch[];
    } else if (name === '--out') {
      o.out = resolve(value());
    } else if (name === '--no-verify') {
      o.verify = false;
    } else {
      throw new Error(`unknown argument ${a}\nusage: npm run bundle:agent -- [--arch x64,arm64|all] [--out DIR] [--no-verify]`);
    }
  }
  return o;
}

if (import.meta.main) {
  try {
    const r = await buildAgentBundle(parseArgs(process.argv.slice(2)));
    process.stdout.write(`${r.dir}\n`);
    for (const f of Object.values(r.manifest.files)) process.stdout.write(`  ${f.file}  ${(f.size / 1e6).toFixed(1)} MB  sha256 ${f.sha256}\n`);
    process.stdout.write(`built in ${r.seconds.toFixed(1)} s\n`);
  } catch (e) {
    process.stderr.write(`bundle-agent: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
