// postAttachCommand runs each time a tool attaches: an SSH client logs in, the browser IDE opens
// its connection. One window opens several connections (and reconnects), so at most once per gap,
// and never two at a time.
export class AttachHook {
  private readonly run: () => Promise<void>;
  private readonly gapMs: number;
  private last = 0;
  private running = false;

  constructor(run: () => Promise<void>, gapMs = 60_000) {
    this.run = run;
    this.gapMs = gapMs;
  }

  attached(): void {
    if (this.running || Date.now() - this.last < this.gapMs) return;
    this.running = true;
    this.last = Date.now();
    void this.run().finally(() => {
      this.running = false;
    });
  }
}
