// Docker on a VM image that has none, when the infra allows it (spec.vm.installDocker) and a
// Gitspace's devcontainer.json needs a container: the distribution's own packages (Debian/Ubuntu:
// docker.io, and docker-compose for a compose file; Fedora/RHEL/Amazon Linux: docker), the service
// started, and the developer's user put in its group. As root only: the local provider's agent
// runs as the operator's user and cannot install anything.
import { existsSync } from 'node:fs';
import { log } from './log.ts';
import { lastLine, run } from './run.ts';

const INSTALL_TIMEOUT_MS = 15 * 60_000;

/** Installs and starts Docker; resolves to what was installed, or throws saying why it could not be. */
export async function installDocker(o: { user: string; compose: boolean }): Promise<string> {
  if (process.getuid?.() !== 0) throw new Error('installing Docker needs root, and this agent is not root');
  const apt = existsSync('/usr/bin/apt-get');
  const dnf = existsSync('/usr/bin/dnf') ? 'dnf' : existsSync('/usr/bin/yum') ? 'yum' : undefined;
  const packages = apt ? ['docker.io', ...(o.compose ? ['docker-compose'] : [])] : ['docker'];
  const t0 = Date.now();
  log('installing Docker', { packages });
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (apt) {
    const update = await run('apt-get', ['update', '-qq'], { env, timeoutMs: INSTALL_TIMEOUT_MS });
    if (update.code !== 0) throw new Error(`apt-get update failed: ${lastLine(update.output)}`);
    const r = await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env, timeoutMs: INSTALL_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`apt-get install ${packages.join(' ')} failed: ${lastLine(r.output)}`);
  } else if (dnf) {
    const r = await run(dnf, ['install', '-y', '-q', ...packages], { env, timeoutMs: INSTALL_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`${dnf} install docker failed: ${lastLine(r.output)}`);
  } else {
    throw new Error('this VM has neither apt-get nor dnf/yum to install Docker with: bake Docker into the image');
  }
  if (existsSync('/usr/bin/systemctl') || existsSync('/bin/systemctl')) {
    const s = await run('systemctl', ['enable', '--now', 'docker.service'], { timeoutMs: 120_000 });
    if (s.code !== 0) throw new Error(`systemctl enable --now docker failed: ${lastLine(s.output)}`);
  }
  const g = await run('usermod', ['-aG', 'docker', o.user]);
  if (g.code !== 0) throw new Error(`usermod -aG docker ${o.user} failed: ${lastLine(g.output)}`);
  const what = `${packages.join(', ')} installed with ${apt ? 'apt' : dnf ?? ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s`;
  log('Docker installed', { packages, ms: Date.now() - t0 });
  return what;
}
