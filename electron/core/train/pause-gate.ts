// The user's pause of a run: the UI flips it, the job waits at it between two steps. While it waits it pings the
// agents now and then, because an agent exits after its host has been silent too long (--host-silence-timeout-s,
// 900 s by default) and a pause may well last longer than that.
export const KEEP_ALIVE_MS = 60_000;

export class PauseGate {
  private paused = false;
  private wake: (() => void) | null = null;

  get isPaused(): boolean {
    return this.paused;
  }

  /** Holds (true) or releases (false) the run; returns whether that changed anything. */
  set(paused: boolean): boolean {
    if (this.paused === paused) return false;
    this.paused = paused;
    if (!paused) this.wake?.();
    return true;
  }

  /**
   * Resolves once the gate is open (at once when it is) or the signal aborts. `keepAlive` runs every
   * `keepAliveMs` while held; its failure (a phone gone during the pause) ends the wait with that error.
   */
  async wait(signal?: AbortSignal, keepAlive?: () => Promise<unknown>, keepAliveMs = KEEP_ALIVE_MS): Promise<void> {
    while (this.paused && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          this.wake = null;
          resolve();
        };
        const timer = setTimeout(done, keepAliveMs);
        signal?.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
      if (this.paused && !signal?.aborted && keepAlive) await keepAlive();
    }
  }
}
