/* The facts of a tool page's result, "4096×3072 px · 6,1 MB": the resolution read here from
 * the result as this browser loaded it, the size sent by the server (our storage's, or a HEAD
 * to RunningHub's file host). Wrapped in Python by arcano_tools/components/result_facts.py.
 * The resolution used to go to the server and back (an event, the page state's lock, a push
 * re-rendering every component of the page) to show what the browser already knew. */
import { useEffect, useState } from "react";

const RESULT_SELECTOR = "[data-testid=result]";

/** "4096×3072 px" once the image or the video's metadata has loaded, else "". */
function resolutionOf(el) {
  const width = el.naturalWidth ?? el.videoWidth;
  const height = el.naturalHeight ?? el.videoHeight;
  return width && height ? `${width}×${height} px` : "";
}

/** The result's facts; `src` is its address (a new result is measured again). */
export function ResultFacts({ src, size }) {
  const [resolution, setResolution] = useState("");
  useEffect(() => {
    const el = document.querySelector(RESULT_SELECTOR);
    setResolution(el ? resolutionOf(el) : "");
    if (!el) return undefined;
    const read = () => setResolution(resolutionOf(el));
    el.addEventListener("load", read);
    el.addEventListener("loadedmetadata", read);
    return () => {
      el.removeEventListener("load", read);
      el.removeEventListener("loadedmetadata", read);
    };
  }, [src]);
  return [resolution, size].filter(Boolean).join(" · ");
}
