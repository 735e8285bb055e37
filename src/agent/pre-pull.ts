// A warm-pool VM's idle time put to use: while it waits to be claimed, it pulls the images its pool
// entry names (the dev containers' base images), so the Gitspace that claims it finds them local and
// `devcontainer up` does not wait for a registry. Best effort: a failed pull is logged and left to
// `devcontainer up` to try again; a claim does not wait for it (Docker joins a pull under way).
import { IMAGE_REF } from '../api/infra.ts';
import { containerRuntime } from './container.ts';
import { log } from './log.ts';
import { run } from './run.ts';

const PULL_TIMEOUT_MS = 30 * 60_000;

export async function prePull(images: unknown, env: NodeJS.ProcessEnv = process.env): Promise<{ pulled: string[]; failed: string[] }> {
  // Boot facts come from the operator, but a pattern check is cheap: nothing that looks like a flag.
  const wanted = Array.isArray(images) ? images.filter((i): i is string => typeof i === 'string' && i.length <= 256 && new RegExp(IMAGE_REF).test(i)).slice(0, 8) : [];
  const done = { pulled: [] as string[], failed: [] as string[] };
  if (wanted.length === 0) return done;
  const runtime = await containerRuntime(env, 5 * 60_000);
  if (!runtime) {
    log('pre-pull skipped: no container runtime on this VM', { images: wanted });
    return done;
  }
  for (const image of wanted) {
    const t0 = Date.now();
    const r = await run('docker', ['pull', '--quiet', image], { env, timeoutMs: PULL_TIMEOUT_MS });
    if (r.code === 0) {
      done.pulled.push(image);
      log('pre-pulled', { image, ms: Date.now() - t0 });
    } else {
      done.failed.push(image);
      log('pre-pull failed', { image, error: r.output.trim().split('\n').pop()?.slice(0, 500) });
    }
  }
  return done;
}
