/* The few things a page does without the server: Arcano Tools' tool pages.
 *
 * - compare: the before/after slider (a range input moves the divider) with zoom (buttons)
 *   and pan (drag, or the scroll bars); all client-side, so it is instant.
 * - reveal: bring the status card into view on a phone, only when it is not in view.
 * - jobEnded: a tab in the background learns a job ended — its title and icon change (back
 *   when the tab is looked at) and, if the person allowed it, a notification is shown.
 * (Reading and asking the notification permission is inline in the page's events,
 * NOTIFY_STATE_JS and NOTIFY_ASK_JS of web/state.py: Next loads this file after hydration, and
 * the offer must work before it has.)
 * - connection: the page shows when the server stopped answering (a frozen or unreachable
 *   backend keeps its socket open, so Reflex's own connection errors come much later). Every
 *   message on the websocket is a sign of life: the page's updates and the socket's pings,
 *   which the server sends every 2 s (REFLEX_SOCKET_INTERVAL, rxconfig.py) — the job's clock
 *   runs in the page (job_clock.jsx), so an unchanged job sends no updates. While a job is
 *   followed, nothing for STALE_MS, or an action (Processar, Cancelar…) unanswered for
 *   STALE_MS, means "sem conexão". Reflex keeps the events and sends them when the server
 *   answers again.
 */
(function () {
  "use strict";
  if (window.arcano) return;
  /* Two pings' silence and some room: one late ping on a busy server is not an outage. */
  var STALE_MS = 4500;
  var lastMessage = Date.now();
  var lastAction = 0;
  var originalTitle = null;
  var originalIcon = null;

  /* --- connection ---------------------------------------------------------------------- */
  /* A websocket message is read through MessageEvent.prototype's `data` getter: wrapping it
   * sees every message of the socket Reflex opened, although that socket was made before
   * this script loaded (Next loads it after hydration). */
  var data = Object.getOwnPropertyDescriptor(MessageEvent.prototype, "data");
  if (data && data.get && data.configurable) { /* every current browser */
    Object.defineProperty(MessageEvent.prototype, "data", {
      configurable: true,
      enumerable: data.enumerable,
      get: function () {
        if (this.target instanceof WebSocket) lastMessage = Date.now();
        return data.get.call(this);
      },
    });
  }
  /* (Not changes in the page: the job's clock changes it every second on its own.) */

  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-server-action]")) lastAction = Date.now();
  }, true);

  function offline() {
    var now = Date.now();
    var following = !!document.querySelector("[data-following='true']");
    if (following && now - lastMessage > STALE_MS) return true;
    return lastAction > lastMessage && now - lastAction > STALE_MS;
  }
  setInterval(function () {
    var root = document.documentElement;
    if (offline()) root.setAttribute("data-offline", "true");
    else root.removeAttribute("data-offline");
  }, 500);

  /* --- before/after --------------------------------------------------------------------- */
  function compareOf(el) { return el.closest && el.closest("[data-compare]"); }

  document.addEventListener("input", function (e) {
    var box = compareOf(e.target);
    if (box && e.target.matches("[data-compare-range]")) {
      box.style.setProperty("--compare-pos", e.target.value + "%");
    }
  });
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-compare-zoom]");
    var box = button && compareOf(button);
    if (!box) return;
    var zoom = button.getAttribute("data-compare-zoom");
    box.style.setProperty("--compare-zoom", zoom);
    box.setAttribute("data-zoom", zoom);
    box.querySelectorAll("[data-compare-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b === button));
    });
  });
  var drag = null;
  document.addEventListener("pointerdown", function (e) {
    var view = e.target.closest && e.target.closest("[data-compare-view]");
    var box = view && compareOf(view);
    if (!box || box.getAttribute("data-zoom") === null || box.getAttribute("data-zoom") === "1") return;
    drag = { view: view, x: e.clientX, y: e.clientY, left: view.scrollLeft, top: view.scrollTop };
    e.preventDefault();
  });
  document.addEventListener("pointermove", function (e) {
    if (!drag) return;
    drag.view.scrollLeft = drag.left - (e.clientX - drag.x);
    drag.view.scrollTop = drag.top - (e.clientY - drag.y);
  });
  document.addEventListener("pointerup", function () { drag = null; });

  /* --- background tab ------------------------------------------------------------------- */
  function iconLink() {
    var link = document.querySelector("link[rel~='icon']");
    if (!link) {
      link = document.createElement("link");
      link.rel = "icon";
      document.head.appendChild(link);
    }
    return link;
  }
  function dotIcon(color) {
    var svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>" +
      "<circle cx='16' cy='16' r='14' fill='" + color + "'/></svg>";
    return "data:image/svg+xml," + encodeURIComponent(svg);
  }
  function restore() {
    if (originalTitle !== null) document.title = originalTitle;
    if (originalIcon !== null) iconLink().href = originalIcon;
    originalTitle = originalIcon = null;
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") restore();
  });

  window.arcano = {
    reveal: function (id) {
      var el = document.getElementById(id);
      if (!el) return;
      var r = el.getBoundingClientRect();
      if (r.top < 0 || r.top > window.innerHeight * 0.5) {
        // no glide when the system asks for reduced motion (assets/pages.css says the rest)
        var still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
        el.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
      }
    },
    jobEnded: function (ok, said, tool) {
      if (document.visibilityState !== "hidden") return;
      if (originalTitle === null) {
        originalTitle = document.title;
        originalIcon = iconLink().href;
      }
      document.title = (ok ? "✓ " : "✕ ") + said + " · " + tool;
      iconLink().href = dotIcon(ok ? "#2f9e44" : "#c92a2a");
      if ("Notification" in window && Notification.permission === "granted") {
        try {
          new Notification(said + ": " + tool, {
            body: ok ? "Seu resultado está pronto para baixar." : "Abra a página para ver o que houve.",
            tag: "arcano-job",
          });
        } catch (err) { /* some browsers only notify from a service worker */ }
      }
    },
  };
})();
