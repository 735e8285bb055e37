// A reason to wait that the runner shows as a condition (and a phase) rather than retrying as an
// error: missing infra or Secret, a refused enrolment, a VM that could not start its agent.
import type { Phase } from '../../api/index.ts';

export class Wait extends Error {
  readonly reason: string;
  readonly retryMs: number | undefined;
  readonly phase: Phase;
  constructor(reason: string, message: string, phase: Phase, retryMs?: number) {
    super(message);
    this.reason = reason;
    this.phase = phase;
    this.retryMs = retryMs;
  }
}
