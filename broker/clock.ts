// A coarse clock (250 ms) for keepalive bookkeeping, so the per-packet path reads a number
// instead of calling Date.now(); and the bound on timer delays.

/** The longest delay setTimeout() takes (2^31 − 1 ms, ~24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

let now = Date.now();
let timer: NodeJS.Timeout | undefined;
let users = 0;

export function coarseNow(): number {
  return now;
}

export function startClock(): void {
  if (users++ === 0) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
    }, 250);
    timer.unref();
  }
}

export function stopClock(): void {
  if (--users === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}
