/* A followed job's clock on a tool page: the elapsed time, the estimate and the bar, advanced
 * every second in the browser from the server's last snapshot (job_clock_math.js says why).
 * Wrapped in Python by arcano_tools/components/job_clock.py. */
import { useEffect, useState } from "react";
import { Progress } from "@radix-ui/themes";
import { durationText, liveLeft, liveSeconds, progressPercent } from "./job_clock_math.js";

const SECOND_MS = 1000;

/* Milliseconds since the snapshot `key` arrived, re-rendered every second while `running`.
 * The wall clock (Date.now), not performance.now: a laptop's sleep must count. */
function useSinceSnapshot(key, running) {
  const [anchor, setAnchor] = useState(() => ({ key, at: Date.now() }));
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const at = Date.now();
    setAnchor({ key, at });
    setNow(at);
  }, [key]);
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(() => setNow(Date.now()), SECOND_MS);
    return () => clearInterval(timer);
  }, [running]);
  return anchor.key === key ? now - anchor.at : 0;
}

/** "1 min 05 s" since the click, the queue included. */
export function JobElapsed({ elapsedMs, running }) {
  const since = useSinceSnapshot(elapsedMs, running);
  return durationText(liveSeconds(elapsedMs, since, running));
}

/** "Faltam cerca de 40 s (…)", from the templates the page passes (texts stay in Python). */
export function JobEstimate({ elapsedMs, leftS, countsDown, running, unknown, soon, about, sentence }) {
  const since = useSinceSnapshot(elapsedMs, running);
  const left = liveLeft(leftS, since, countsDown);
  if (left < 0) return unknown;
  const said = left < 5 ? soon : about.replace("{}", durationText(left));
  return sentence.replace("{}", said);
}

/** Radix's bar at elapsed / (elapsed + left), moving with the clock. */
export function JobProgress({ elapsedMs, leftS, countsDown, running, low, high, ...rest }) {
  const since = useSinceSnapshot(elapsedMs, running);
  const value = progressPercent(
    liveSeconds(elapsedMs, since, running),
    liveLeft(leftS, since, countsDown),
    low,
    high,
  );
  return <Progress value={Math.max(0, value)} {...rest} />;
}
