// pingcalc page: calls the JSON API with the pasted bearer token.
//
// Security rules this file keeps (the page runs under a strict CSP, see api/web.py):
// - server data reaches the DOM only through textContent / createElement, never innerHTML,
//   so an expression such as <img src=x onerror=...> is shown as text and never parsed;
// - the token lives in memory and sessionStorage only: never in a URL, a cookie or a log;
// - requests are same-origin, without cookies (credentials: "omit") and without caching.
"use strict";

(() => {
  const TOKEN_KEY = "pingcalc.token";
  // A ping of the largest count with its per-reply timeout ends well within this; a hung
  // connection must not leave the form disabled forever.
  const REQUEST_TIMEOUT_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const tokenInput = $("token");

  // --- token -----------------------------------------------------------------------------

  function readStoredToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return ""; // storage disabled: the token then lives in the input (memory) only
    }
  }

  function storeToken(value) {
    try {
      if (value) {
        window.sessionStorage.setItem(TOKEN_KEY, value);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch {
      // storage disabled: nothing to do, the input still holds the token
    }
  }

  function currentToken() {
    return tokenInput.value.trim();
  }

  tokenInput.value = readStoredToken();
  tokenInput.addEventListener("input", () => storeToken(currentToken()));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken(currentToken());
  });
  $("token-forget").addEventListener("click", () => {
    tokenInput.value = "";
    storeToken("");
    tokenInput.focus();
  });

  // --- output ----------------------------------------------------------------------------

  function block(text, className) {
    const pre = document.createElement("pre");
    if (className) {
      pre.className = className;
    }
    pre.textContent = text;
    return pre;
  }

  function show(region, state, ...blocks) {
    region.className = "result " + state;
    region.setAttribute("aria-busy", state === "pending" ? "true" : "false");
    region.replaceChildren(...blocks);
  }

  function asText(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function formatMs(value) {
    const number = Number(value);
    return Number.isFinite(number) ? String(Math.round(number * 1000) / 1000) : "?";
  }

  // The caret under the failing column (1-based, in code points like the server counts them).
  // Tabs are copied so the caret stays aligned under a tab-indented expression.
  function caretLine(expression, position) {
    const chars = Array.from(expression);
    const column = Math.max(1, Math.min(Number(position) || 1, chars.length + 1));
    let pad = "";
    for (let i = 0; i < column - 1; i += 1) {
      pad += chars[i] === "\t" ? "\t" : " ";
    }
    return pad + "^";
  }

  function problemText(response) {
    const { status, data } = response;
    const title = asText(data && data.title) || "Error";
    const detail = asText(data && data.detail) || "the server gave no detail";
    let text = `Error ${status} ${title}: ${detail}`;
    if (data && Number.isInteger(data.retry_after)) {
      text += ` (retry after ${data.retry_after} s)`;
    }
    return text;
  }

  // --- requests --------------------------------------------------------------------------

  // A calculation's result is kept as the server wrote it: as a JS number, 7.0 would print
  // as 7 and 2 ** 100 would be rounded to 1.2676506002282294e+30. The reviver's source text
  // (JSON.parse source access) gives the exact digits; older browsers fall back to the number.
  function parseJson(text) {
    return JSON.parse(text, (key, value, context) =>
      key === "result" && typeof value === "number" && context && typeof context.source === "string"
        ? context.source
        : value,
    );
  }

  async function callApi(path, payload) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json, application/problem+json",
    };
    const token = currentToken();
    if (token) {
      headers.Authorization = `Bearer ${token}`;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        method: "POST",
        headers,
        body: JSON.stringify(payload),
        credentials: "omit",
        cache: "no-store",
        mode: "same-origin",
        redirect: "error",
        referrerPolicy: "no-referrer",
        signal: controller.signal,
      });
      let data = null;
      try {
        data = parseJson(await response.text());
      } catch {
        data = null; // not JSON (a proxy page?): reported below without its body
      }
      return { ok: response.ok, status: response.status, data };
    } catch (error) {
      const reason =
        error && error.name === "AbortError"
          ? "the server did not answer in time"
          : error instanceof TypeError && token && /[^\x21-\x7e]/.test(token)
            ? "the token contains characters that cannot be sent in a header"
            : "the server could not be reached";
      return { ok: false, status: 0, data: null, reason };
    } finally {
      window.clearTimeout(timer);
    }
  }

  function failure(response) {
    if (response.status === 0) {
      return `Error: ${response.reason}`;
    }
    return problemText(response);
  }

  function bindForm(form, region, pendingText, run) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      show(region, "pending", block(pendingText(), "pending"));
      try {
        await run();
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- calculate -------------------------------------------------------------------------

  const calcForm = $("calc-form");
  const calcResult = $("calc-result");
  const expressionInput = $("expression");

  bindForm(calcForm, calcResult, () => "Calculating…", async () => {
    const expression = expressionInput.value;
    const response = await callApi("/api/v1/calculate", { expression });
    if (response.ok && response.data) {
      const shown = asText(response.data.expression) || expression;
      show(calcResult, "ok", block(`${shown} = ${asText(response.data.result)}`));
      return;
    }
    const blocks = [];
    const position = response.data && response.data.position;
    let message = failure(response);
    if (response.status === 422 && Number.isInteger(position)) {
      if (!message.includes(`column ${position}`)) {
        message += ` (column ${position})`;
      }
      blocks.push(block(message));
      blocks.push(block(`${expression}\n${caretLine(expression, position)}`, "source"));
    } else {
      blocks.push(block(message));
    }
    show(calcResult, "error", ...blocks);
  });

  // --- ping ------------------------------------------------------------------------------

  const pingForm = $("ping-form");
  const pingResult = $("ping-result");
  const targetInput = $("target");
  const countInput = $("count");

  function familyName(family) {
    return family === 4 || family === 6 ? `IPv${family}` : asText(family);
  }

  function pingReport(data) {
    const lines = [`PING ${asText(data.target)} (${familyName(data.family)})`];
    const replies = Array.isArray(data.replies) ? data.replies : [];
    for (const reply of replies) {
      lines.push(`seq=${asText(reply && reply.seq)} rtt=${formatMs(reply && reply.rtt_ms)} ms`);
    }
    let summary =
      `${asText(data.sent)} sent, ${asText(data.received)} received, ` +
      `${asText(data.loss_percent)}% loss`;
    const rtt = data.rtt_ms;
    if (rtt && typeof rtt === "object") {
      summary +=
        "; rtt min/avg/max/stddev = " +
        [rtt.min, rtt.avg, rtt.max, rtt.stddev].map(formatMs).join("/") +
        " ms";
    }
    lines.push(summary);
    lines.push(`backend: ${asText(data.backend)}`);
    return lines.join("\n");
  }

  bindForm(
    pingForm,
    pingResult,
    () => `Pinging ${targetInput.value.trim()}…`,
    async () => {
      const payload = { target: targetInput.value.trim(), count: Number(countInput.value) };
      const response = await callApi("/api/v1/ping", payload);
      if (response.ok && response.data) {
        show(pingResult, "ok", block(pingReport(response.data)));
      } else {
        show(pingResult, "error", block(failure(response)));
      }
    },
  );
})();
