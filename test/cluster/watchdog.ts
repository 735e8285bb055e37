// Detached reaper for a test cluster: `watchdog.ts <parent-pid> <dir>`. When the parent dies while
// <dir> still exists (it was killed before it could tear down), kill every pid in <dir>/pids and
// remove <dir>. When <dir> disappears first, the parent tore down normally and we just exit.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from '../support/wait.ts';

const parent = Number(process.argv[2]);
const dir = process.argv[3] ?? '';
if (!parent || !dir) process.exit(2);


function pids(): number[] {
  try {
    return readFileSync(join(dir, 'pids'), 'utf8').split('\n').map(Number).filter((n) => n > 0);
  } catch {
    return [];
  }
}

const timer = setInterval(() => {
  if (!existsSync(dir)) process.exit(0);
  if (alive(parent)) return;
  clearInterval(timer);
  const victims = pids();
  for (const p of victims) if (alive(p)) process.kill(p, 'SIGTERM');
  setTimeout(() => {
    for (const p of victims) if (alive(p)) process.kill(p, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }, 3_000);
}, 300);
