/* The arithmetic of a followed job's clock, run in the browser (no React, no imports).
 *
 * The server sends a snapshot when the job changes (its elapsed time in ms, the estimated
 * seconds left, whether that estimate counts down); the page advances it every second on its
 * own, so a thousand open pages are sent nothing between changes (BENCHMARKS.md, item
 * 20). The estimate itself stays on the server (services/progress.py, left_estimate_s); this
 * file only moves it along. durationText mirrors web/texts.py duration_text:
 * tests/e2e/test_job_clock.py runs both on the same inputs.
 */

/** 75 → "1 min 15 s"; 40 → "40 s"; 120 → "2 min". */
export function durationText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + " s";
  const minutes = Math.floor(s / 60);
  const rest = s % 60;
  return rest ? minutes + " min " + String(rest).padStart(2, "0") + " s" : minutes + " min";
}

/** Whole seconds of a snapshot of `baseMs`, `sinceMs` after it arrived (frozen once ended). */
export function liveSeconds(baseMs, sinceMs, running) {
  return Math.floor((baseMs + (running ? Math.max(0, sinceMs) : 0)) / 1000);
}

/** Seconds left: the snapshot's estimate, counted down while the job runs; -1 stays unknown. */
export function liveLeft(leftS, sinceMs, countsDown) {
  if (leftS < 0) return -1;
  if (!countsDown) return leftS;
  return Math.max(0, leftS - Math.floor(Math.max(0, sinceMs) / 1000));
}

/** The bar: elapsed over elapsed + left, kept within [low, high] (never full before the end);
 * -1 with nothing to estimate from. Rounded half up, as services/progress.py rounds. */
export function progressPercent(elapsedS, leftS, low, high) {
  if (leftS < 0) return -1;
  const done = Math.floor((100 * elapsedS) / Math.max(1, elapsedS + leftS) + 0.5);
  return Math.max(low, Math.min(high, done));
}
