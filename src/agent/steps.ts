// The order of the set-up steps, and walking them: each step's status, timing and note, stopping at
// the first that fails. What each step does is setup.ts's.
import type { StepName, StepStatus } from '../api/agent.ts';
import { log } from './log.ts';

// The devcontainer lifecycle in the spec's order: initializeCommand, onCreateCommand and
// updateContentCommand before the IDE is started (the spec's default waitFor), postCreateCommand
// and postStartCommand after; postAttachCommand is not a step: it runs per attach (attach.ts).
// With a dev container, `container` runs `devcontainer up` (which runs initializeCommand itself);
// the later hooks run in the container.
const FIRST_BOOT: StepName[] = ['user', 'env', 'tools', 'git', 'gitCredentials', 'clone', 'ideSetup', 'initializeCommand', 'container', 'onCreateCommand', 'updateContentCommand', 'ideRun', 'postCreateCommand', 'postStartCommand'];
/** After a restart the disk is kept: only what does not survive a stop runs again (and initializeCommand, which the spec runs on every start; `up` finds and starts the same container). */
const RESTART: StepName[] = ['gitCredentials', 'initializeCommand', 'container', 'ideRun', 'postStartCommand'];

/** A rebuild: the devcontainer.json again, a new container, the hooks a new container gets and the IDE in it. */
export const REBUILD: StepName[] = ['ideSetup', 'container', 'onCreateCommand', 'updateContentCommand', 'ideRun', 'postCreateCommand', 'postStartCommand'];

export function pendingSteps(restart: boolean): StepStatus[] {
  return (restart ? RESTART : FIRST_BOOT).map((name) => ({ name, status: 'pending' }));
}

/**
 * Runs the steps in order, recording each one's outcome in its status; `runStep` returns a note
 * for the status, or 'skipped'. Returns false when a step failed (the later ones stay pending).
 */
export async function runSteps(steps: StepStatus[], runStep: (name: StepName) => Promise<string | undefined>): Promise<boolean> {
  for (const step of steps) {
    step.status = 'running';
    step.startedAt = new Date().toISOString();
    try {
      const msg = await runStep(step.name);
      step.status = msg === 'skipped' ? 'skipped' : 'done';
      if (msg && msg !== 'skipped') step.message = msg;
    } catch (e) {
      step.status = 'failed';
      step.message = e instanceof Error ? e.message : String(e);
      log('step failed', { step: step.name, error: step.message });
      return false;
    } finally {
      step.finishedAt = new Date().toISOString();
    }
  }
  return true;
}
