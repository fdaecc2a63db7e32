/**
 * Per-socket limits of the web widget: a token bucket on incoming frames (a person types far slower than the
 * burst allows; a script flooding the socket is answered `rate_limited` and, when it keeps on, disconnected) and a
 * cap on messages of one socket being queued at the same time.
 */
export interface FrameLimits {
  burst: number;
  perSecond: number;
  maxInFlight: number;
  closeAfterRefused: number;
}

export type FrameVerdict = 'accept' | 'refuse' | 'close';

export class FrameBudget {
  private tokens: number;
  private refilledAt: number;
  private refusedInARow = 0;
  private inFlight = 0;

  constructor(
    private readonly limits: FrameLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = limits.burst;
    this.refilledAt = now();
  }

  /** Whether the next frame may be handled; `close` once refusals have gone on for `closeAfterRefused` frames. */
  take(): FrameVerdict {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.refusedInARow = 0;
      return 'accept';
    }
    return this.refuse();
  }

  /** Reserves a slot for a message being queued; false (and counted as refused) when the socket has too many. */
  startIngest(): boolean {
    if (this.inFlight >= this.limits.maxInFlight) return false;
    this.inFlight++;
    return true;
  }

  endIngest(): void {
    this.inFlight--;
  }

  refuse(): FrameVerdict {
    this.refusedInARow++;
    return this.refusedInARow >= this.limits.closeAfterRefused ? 'close' : 'refuse';
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.limits.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.limits.perSecond);
    this.refilledAt = now;
  }
}
