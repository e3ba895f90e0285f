/* The facts of a tool page's result, "4096×3072 px · 6,1 MB": the resolution read here from
 * the result as this browser loaded it, the size sent by the server (our storage's, or a HEAD
 * to RunningHub's file host). Wrapped in Python by arcano_tools/components/result_facts.py.
 * The resolution used to go to the server and back (an event, the page state's lock, a push
 * re-rendering every component of the page) to show what the browser already knew. */
import { useEffect, useState } from "react";

const RESULT_SELECTOR = "[data-testid=result]";

/** "4096×3072 px" once the image or the video's metadata has loaded, else "" (an image whose
 * new address is still loading may report the previous one's size: not trusted until done). */
function resolutionOf(el) {
  if (el.tagName === "IMG" && !el.complete) return "";
  const width = el.naturalWidth ?? el.videoWidth;
  const height = el.naturalHeight ?? el.videoHeight;
  return width && height ? `${width}×${height} px` : "";
}

/** The result's facts; `src` is its address (a new result is measured again). The loads are
 * heard on the document (they do not bubble; captured), so a result element replaced by
 * another with the same address (the before/after and the plain image) is still heard. */
export function ResultFacts({ src, size }) {
  const [resolution, setResolution] = useState("");
  useEffect(() => {
    const el = document.querySelector(RESULT_SELECTOR);
    setResolution(el ? resolutionOf(el) : "");
    const read = (event) => {
      if (event.target instanceof Element && event.target.matches(RESULT_SELECTOR)) {
        setResolution(resolutionOf(event.target));
      }
    };
    document.addEventListener("load", read, true);
    document.addEventListener("loadedmetadata", read, true);
    return () => {
      document.removeEventListener("load", read, true);
      document.removeEventListener("loadedmetadata", read, true);
    };
  }, [src]);
  return [resolution, size].filter(Boolean).join(" · ");
}
